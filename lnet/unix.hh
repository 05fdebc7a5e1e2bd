// Unix domain sockets: "unix:/path" and "unix:@name" (Linux's abstract
// namespace) hosts for connect and listen. What differs from TCP lives
// here: the address, the stale socket file, the file's mode and removal,
// and the peer's credentials.
#pragma once

#include <lua.hpp>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cstddef>

namespace lnet {

// Whether host names a Unix socket ("unix:..."): a host never resolved.
bool is_unix_host(const char* host) noexcept;

// The longest path (or abstract name) a sockaddr_un holds.
constexpr size_t kUnixPathMax = sizeof(sockaddr_un::sun_path) - 1;

// For connect and listen, after check_host(): raises bad argument #arg when
// host is "unix:" with an empty path or one longer than kUnixPathMax (never
// truncated). The port argument port_arg must be nil or 0 (it is ignored).
void check_unix_host(lua_State* L, int arg, const char* host, size_t len, int port_arg);

// The address of a "unix:" host. Never fails once check_unix_host passed.
void unix_sockaddr(const char* host, sockaddr_un* sa, socklen_t* len) noexcept;

// Before bind(): a socket file at the path that nothing accepts on (a
// stale one) is removed; a live one, or a path that is not a socket, gives
// EADDRINUSE (never removed). 0 when bind() may proceed.
int unix_prepare_listen(const sockaddr_un* sa, socklen_t len) noexcept;

// After bind(): chmod to mode (>= 0) for a path socket: 0 or an errno.
int unix_apply_mode(const sockaddr_un* sa, socklen_t len, int mode) noexcept;

// stop()/close of a listener: removes its socket file (a path, not an
// abstract name) if it is still the one this listener made (same inode).
void unix_remove(const sockaddr_un* sa, socklen_t len, dev_t dev, ino_t ino) noexcept;
// The device and inode of the bound socket file (false for abstract names).
bool unix_file_id(const sockaddr_un* sa, socklen_t len, dev_t* dev, ino_t* ino) noexcept;

// "unix:/path" or "unix:@name" of a Unix address, into out.
void unix_format(const sockaddr_un* sa, socklen_t len, char* out, size_t n) noexcept;

// Pushes pid, uid, gid of the peer of fd (SO_PEERCRED), or nil, message, code.
int push_peercred(lua_State* L, int fd);

}  // namespace lnet
