// The name resolver of a context: getaddrinfo on worker threads that never
// touch Lua. lookup_start and lookup_cancel (address.hh) are its interface
// to the objects; this is the context's side.
#pragma once

namespace lnet {

struct Context;
struct Resolver;

// The context is going away: drops every lookup not in a worker's hands
// (a worker frees its own when it finishes) and the context's share of the
// resolver. Never waits for a thread. Afterwards lookup_cancel does nothing,
// and a Lookup the caller still holds must not be used.
void resolver_close(Context* ctx) noexcept;

}  // namespace lnet
