#include "address.hh"

#include "unix.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace lnet {

bool sockaddr_ip(const sockaddr* sa, char* ip, size_t iplen, int* port) noexcept {
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, ip, static_cast<socklen_t>(iplen));
    *port = ntohs(in->sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, static_cast<socklen_t>(iplen));
    *port = ntohs(in6->sin6_port);
    return true;
  }
  return false;
}

namespace {

// host with its control bytes and backslashes escaped, cut to fit n.
void escape_host(char* out, size_t n, const char* host) noexcept {
  static const char kHex[] = "0123456789abcdef";
  size_t used = 0;
  for (const unsigned char* p = reinterpret_cast<const unsigned char*>(host); *p; p++) {
    char esc[5];
    size_t len = 2;
    esc[0] = '\\';
    switch (*p) {
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      case '\\': esc[1] = '\\'; break;
      default:
        if (*p >= 0x20 && *p != 0x7f) {
          esc[0] = static_cast<char>(*p);
          len = 1;
        } else {
          esc[1] = 'x';
          esc[2] = kHex[*p >> 4];
          esc[3] = kHex[*p & 0xf];
          len = 4;
        }
    }
    if (used + len >= n) break;
    std::memcpy(out + used, esc, len);
    used += len;
  }
  out[used] = '\0';
}

}  // namespace

void format_endpoint(char* out, size_t n, const char* host, int port) noexcept {
  char shown[kEndpointLen];
  escape_host(shown, sizeof shown, host);
  if (is_unix_host(host))  // "unix:/path", "unix:@name": no port
    std::snprintf(out, n, "%s", shown);
  else if (host[0] != '[' && std::strchr(host, ':'))
    std::snprintf(out, n, "[%s]:%d", shown, port);
  else
    std::snprintf(out, n, "%s:%d", shown, port);
}

int push_socket_address(lua_State* L, evutil_socket_t fd, bool peer) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[kIpLen];
  int port = 0;
  int rc = fd < 0 ? (errno = ENOTCONN, -1)
           : peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                  : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) {
    int e = errno;  // read before any Lua call
    lua_pushnil(L);
    lua_pushstring(L, e == ENOTCONN ? "not connected" : std::strerror(e));
    return 2;
  }
  if (ss.ss_family == AF_UNIX) {  // "unix:/path" alone: there is no port
    char path[kEndpointLen];
    unix_format(reinterpret_cast<sockaddr_un*>(&ss), len, path, sizeof path);
    lua_pushstring(L, path);
    return 1;
  }
  if (!sockaddr_ip(reinterpret_cast<sockaddr*>(&ss), ip, sizeof ip, &port)) {
    lua_pushnil(L);
    lua_pushliteral(L, "unsupported address family");
    return 2;
  }
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  return 2;
}

}  // namespace lnet
