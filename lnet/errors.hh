// Stable error codes: the short names a program compares (SPEC Part D),
// beside the human message that stays as it is. A network failure carries
// the errno name ("ECONNRESET"), a resolver failure the getaddrinfo name
// ("EAI_NONAME"), and lnet's own conditions the names below.
#pragma once

namespace lnet {

// send() on no open connection gives "ENOTCONN"; after disconnect() or
// shutdown(), "ESHUTDOWN" (the errno names of those conditions).
// lnet's own codes (the README has the one table of every code).
inline constexpr const char kCodeIdleTimeout[] = "IDLE_TIMEOUT";      // idle_timeout ran out
inline constexpr const char kCodeMaxBuffer[] = "MAX_BUFFER";          // send found max_buffer queued
inline constexpr const char kCodeLingerTimeout[] = "LINGER_TIMEOUT";  // a graceful close could not drain

// The errno name of err ("ECONNREFUSED", "ETIMEDOUT", ...); "EUNKNOWN" for
// a value it does not know. Static text; never fails.
const char* errno_code(int err) noexcept;

// The name of a getaddrinfo (or libevent EVUTIL_EAI_*) error code
// ("EAI_NONAME", "EAI_AGAIN", ...); "EAI_UNKNOWN" otherwise. Static text.
const char* eai_code(int gai_err) noexcept;

}  // namespace lnet
