#include "unix.hh"

#include "errors.hh"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace lnet {

namespace {

constexpr char kPrefix[] = "unix:";
constexpr size_t kPrefixLen = sizeof kPrefix - 1;

bool is_abstract(const sockaddr_un* sa, socklen_t len) noexcept {
  return len > offsetof(sockaddr_un, sun_path) && sa->sun_path[0] == '\0';
}

}  // namespace

bool is_unix_host(const char* host) noexcept {
  return std::strncmp(host, kPrefix, kPrefixLen) == 0;
}

void check_unix_host(lua_State* L, int arg, const char* host, size_t len, int port_arg) {
  size_t plen = len - kPrefixLen;
  if (plen == 0 || (plen == 1 && host[kPrefixLen] == '@'))
    luaL_argerror(L, arg, "unix socket path is empty");
  if (plen > kUnixPathMax)
    luaL_argerror(L, arg, lua_pushfstring(L, "unix socket path longer than %d bytes",
                                          static_cast<int>(kUnixPathMax)));
  if (!lua_isnoneornil(L, port_arg)) {
    int isnum = 0;
    lua_Integer port =
        lua_type(L, port_arg) == LUA_TNUMBER ? lua_tointegerx(L, port_arg, &isnum) : -1;
    if (!isnum || port != 0) luaL_argerror(L, port_arg, "port must be nil or 0 for a unix socket");
  }
}

void unix_sockaddr(const char* host, sockaddr_un* sa, socklen_t* len) noexcept {
  const char* path = host + kPrefixLen;
  size_t plen = std::strlen(path);
  if (plen > kUnixPathMax) plen = kUnixPathMax;  // (checked before: never happens)
  std::memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  std::memcpy(sa->sun_path, path, plen);
  if (path[0] == '@') {
    // Abstract: a leading NUL, and the name's length is part of the address.
    sa->sun_path[0] = '\0';
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + plen);
  } else {
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + plen + 1);
  }
}

int unix_prepare_listen(const sockaddr_un* sa, socklen_t len) noexcept {
  if (is_abstract(sa, len)) return 0;  // the kernel says whether it is taken
  struct stat st;
  if (lstat(sa->sun_path, &st) != 0) return errno == ENOENT ? 0 : errno;
  if (!S_ISSOCK(st.st_mode)) return EADDRINUSE;  // never removed
  // A socket file: live if something accepts on it.
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(sa), len);
  int e = rc == 0 ? 0 : errno;
  ::close(fd);
  if (rc == 0 || e == EAGAIN) return EADDRINUSE;  // accepting (or its backlog is full)
  if (e != ECONNREFUSED) return e == ENOENT ? 0 : e;
  if (::unlink(sa->sun_path) != 0 && errno != ENOENT) return errno;  // stale: replaced
  return 0;
}

int unix_apply_mode(const sockaddr_un* sa, socklen_t len, int mode) noexcept {
  if (mode < 0 || is_abstract(sa, len)) return 0;
  return ::chmod(sa->sun_path, static_cast<mode_t>(mode)) == 0 ? 0 : errno;
}

bool unix_file_id(const sockaddr_un* sa, socklen_t len, dev_t* dev, ino_t* ino) noexcept {
  struct stat st;
  if (is_abstract(sa, len) || lstat(sa->sun_path, &st) != 0) return false;
  *dev = st.st_dev;
  *ino = st.st_ino;
  return true;
}

void unix_remove(const sockaddr_un* sa, socklen_t len, dev_t dev, ino_t ino) noexcept {
  struct stat st;
  if (is_abstract(sa, len) || lstat(sa->sun_path, &st) != 0) return;
  // Another server may have replaced it meanwhile: remove only our own.
  if (S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino) ::unlink(sa->sun_path);
}

void unix_format(const sockaddr_un* sa, socklen_t len, char* out, size_t n) noexcept {
  size_t off = offsetof(sockaddr_un, sun_path);
  if (len <= off) {
    std::snprintf(out, n, "unix:");  // unnamed (a client's own end)
    return;
  }
  if (sa->sun_path[0] == '\0') {
    int plen = static_cast<int>(len - off - 1);
    std::snprintf(out, n, "unix:@%.*s", plen, sa->sun_path + 1);
  } else {
    std::snprintf(out, n, "unix:%.*s", static_cast<int>(sizeof sa->sun_path), sa->sun_path);
  }
}

int push_peercred(lua_State* L, int fd) {
  ucred cred;
  socklen_t len = sizeof cred;
  sockaddr_storage ss;
  socklen_t sslen = sizeof ss;
  int e = fd < 0 ? ENOTCONN : 0;
  // Only a Unix socket has credentials (TCP would give the overflow ids).
  if (!e && getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sslen) != 0) e = errno;
  if (!e && ss.ss_family != AF_UNIX) e = EOPNOTSUPP;
  if (!e && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) e = errno;
  if (e) {
    luaL_pushfail(L);
    lua_pushstring(L, e == ENOTCONN    ? "not connected"
                      : e == EOPNOTSUPP ? "not a unix socket"
                                        : std::strerror(e));
    lua_pushstring(L, errno_code(e));
    return 3;
  }
  lua_pushinteger(L, cred.pid);
  lua_pushinteger(L, cred.uid);
  lua_pushinteger(L, cred.gid);
  return 3;
}

}  // namespace lnet
