#include "errors.hh"

#include <event2/util.h>

#include <netdb.h>

#include <cerrno>

namespace lnet {

// A table rather than glibc's strerrorname_np: the names must not depend on
// the C library (musl, BSDs), and each entry only exists where the system
// defines the errno.
const char* errno_code(int err) noexcept {
  switch (err) {
#define LNET_ERRNO(e) \
  case e:             \
    return #e;
#ifdef EPERM
    LNET_ERRNO(EPERM)
#endif
#ifdef ENOENT
    LNET_ERRNO(ENOENT)
#endif
#ifdef EINTR
    LNET_ERRNO(EINTR)
#endif
#ifdef EIO
    LNET_ERRNO(EIO)
#endif
#ifdef EBADF
    LNET_ERRNO(EBADF)
#endif
#ifdef EAGAIN
    LNET_ERRNO(EAGAIN)
#endif
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN
    LNET_ERRNO(EWOULDBLOCK)
#endif
#ifdef ENOMEM
    LNET_ERRNO(ENOMEM)
#endif
#ifdef EACCES
    LNET_ERRNO(EACCES)
#endif
#ifdef EFAULT
    LNET_ERRNO(EFAULT)
#endif
#ifdef EBUSY
    LNET_ERRNO(EBUSY)
#endif
#ifdef EEXIST
    LNET_ERRNO(EEXIST)
#endif
#ifdef ENODEV
    LNET_ERRNO(ENODEV)
#endif
#ifdef ENOTDIR
    LNET_ERRNO(ENOTDIR)
#endif
#ifdef EINVAL
    LNET_ERRNO(EINVAL)
#endif
#ifdef ENFILE
    LNET_ERRNO(ENFILE)
#endif
#ifdef EMFILE
    LNET_ERRNO(EMFILE)
#endif
#ifdef ENOSPC
    LNET_ERRNO(ENOSPC)
#endif
#ifdef EPIPE
    LNET_ERRNO(EPIPE)
#endif
#ifdef ENAMETOOLONG
    LNET_ERRNO(ENAMETOOLONG)
#endif
#ifdef ENOSYS
    LNET_ERRNO(ENOSYS)
#endif
#ifdef ELOOP
    LNET_ERRNO(ELOOP)
#endif
#ifdef ENOTSOCK
    LNET_ERRNO(ENOTSOCK)
#endif
#ifdef EDESTADDRREQ
    LNET_ERRNO(EDESTADDRREQ)
#endif
#ifdef EMSGSIZE
    LNET_ERRNO(EMSGSIZE)
#endif
#ifdef EPROTOTYPE
    LNET_ERRNO(EPROTOTYPE)
#endif
#ifdef ENOPROTOOPT
    LNET_ERRNO(ENOPROTOOPT)
#endif
#ifdef EPROTONOSUPPORT
    LNET_ERRNO(EPROTONOSUPPORT)
#endif
#ifdef ESOCKTNOSUPPORT
    LNET_ERRNO(ESOCKTNOSUPPORT)
#endif
#ifdef EOPNOTSUPP
    LNET_ERRNO(EOPNOTSUPP)
#endif
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    LNET_ERRNO(ENOTSUP)
#endif
#ifdef EPFNOSUPPORT
    LNET_ERRNO(EPFNOSUPPORT)
#endif
#ifdef EAFNOSUPPORT
    LNET_ERRNO(EAFNOSUPPORT)
#endif
#ifdef EADDRINUSE
    LNET_ERRNO(EADDRINUSE)
#endif
#ifdef EADDRNOTAVAIL
    LNET_ERRNO(EADDRNOTAVAIL)
#endif
#ifdef ENETDOWN
    LNET_ERRNO(ENETDOWN)
#endif
#ifdef ENETUNREACH
    LNET_ERRNO(ENETUNREACH)
#endif
#ifdef ENETRESET
    LNET_ERRNO(ENETRESET)
#endif
#ifdef ECONNABORTED
    LNET_ERRNO(ECONNABORTED)
#endif
#ifdef ECONNRESET
    LNET_ERRNO(ECONNRESET)
#endif
#ifdef ENOBUFS
    LNET_ERRNO(ENOBUFS)
#endif
#ifdef EISCONN
    LNET_ERRNO(EISCONN)
#endif
#ifdef ENOTCONN
    LNET_ERRNO(ENOTCONN)
#endif
#ifdef ESHUTDOWN
    LNET_ERRNO(ESHUTDOWN)
#endif
#ifdef ETIMEDOUT
    LNET_ERRNO(ETIMEDOUT)
#endif
#ifdef ECONNREFUSED
    LNET_ERRNO(ECONNREFUSED)
#endif
#ifdef EHOSTDOWN
    LNET_ERRNO(EHOSTDOWN)
#endif
#ifdef EHOSTUNREACH
    LNET_ERRNO(EHOSTUNREACH)
#endif
#ifdef EALREADY
    LNET_ERRNO(EALREADY)
#endif
#ifdef EINPROGRESS
    LNET_ERRNO(EINPROGRESS)
#endif
#ifdef EPROTO
    LNET_ERRNO(EPROTO)
#endif
#ifdef ECANCELED
    LNET_ERRNO(ECANCELED)
#endif
#undef LNET_ERRNO
    default:
      return "EUNKNOWN";
  }
}

const char* eai_code(int gai_err) noexcept {
  switch (gai_err) {
#define LNET_EAI(e) \
  case e:           \
    return #e;
#ifdef EAI_ADDRFAMILY
    LNET_EAI(EAI_ADDRFAMILY)
#endif
#ifdef EAI_AGAIN
    LNET_EAI(EAI_AGAIN)
#endif
#ifdef EAI_BADFLAGS
    LNET_EAI(EAI_BADFLAGS)
#endif
#ifdef EAI_FAIL
    LNET_EAI(EAI_FAIL)
#endif
#ifdef EAI_FAMILY
    LNET_EAI(EAI_FAMILY)
#endif
#ifdef EAI_MEMORY
    LNET_EAI(EAI_MEMORY)
#endif
#if defined(EAI_NODATA) && EAI_NODATA != EAI_NONAME
    LNET_EAI(EAI_NODATA)
#endif
#ifdef EAI_NONAME
    LNET_EAI(EAI_NONAME)
#endif
#ifdef EAI_SERVICE
    LNET_EAI(EAI_SERVICE)
#endif
#ifdef EAI_SOCKTYPE
    LNET_EAI(EAI_SOCKTYPE)
#endif
#ifdef EAI_SYSTEM
    LNET_EAI(EAI_SYSTEM)
#endif
#ifdef EAI_OVERFLOW
    LNET_EAI(EAI_OVERFLOW)
#endif
#ifdef EAI_CANCELED
    LNET_EAI(EAI_CANCELED)
#endif
#undef LNET_EAI
    default:
      break;
  }
  // libevent's own codes where the system has none (evdns answers).
  if (gai_err == EVUTIL_EAI_CANCEL) return "EAI_CANCELED";
  return "EAI_UNKNOWN";
}

}  // namespace lnet
