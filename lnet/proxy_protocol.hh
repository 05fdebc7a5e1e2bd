// The PROXY protocol (HAProxy's specification, versions 1 and 2): an
// incremental parser for the header a load balancer sends before the
// client's bytes, the trusted-source check, and the header lnet sends as a
// client. Pure code: no Lua, no libevent, no allocation except the v2
// header's buffer, never raises or throws.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>

namespace lnet {

enum class ProxyMode : uint8_t { Off, V1, V2, Any };

enum class ProxyStatus : uint8_t {
  NeedMore,  // every byte so far fits a header: feed more
  Done,      // a complete, valid header (see ProxyHeader)
  Invalid,   // not a valid header of the accepted versions
};

// What a complete header said.
struct ProxyHeader {
  int version = 0;      // 1 or 2
  bool local = false;   // v2 LOCAL command: the proxy's own connection (health check)
  // AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC (v1 UNKNOWN, v2 UNSPEC): the
  // source and destination below are meaningful for INET, INET6 and UNIX.
  int family = AF_UNSPEC;
  int socktype = 0;     // v2: SOCK_STREAM, SOCK_DGRAM or 0 (unspecified); v1: SOCK_STREAM
  sockaddr_storage src{};
  sockaddr_storage dst{};
  // v2 TLVs: type (1 byte), length (2 bytes, big-endian), value; checked to
  // fill their space exactly. Points into the parser's buffer.
  const unsigned char* tlvs = nullptr;
  size_t tlvs_len = 0;
};

// TLV types of the specification.
enum : uint8_t {
  kPp2Alpn = 0x01,
  kPp2Authority = 0x02,
  kPp2Crc32c = 0x03,
  kPp2Noop = 0x04,
  kPp2UniqueId = 0x05,
  kPp2Ssl = 0x20,
  kPp2Netns = 0x30,
};

constexpr size_t kProxyV1Max = 107;        // the longest v1 line, CRLF included
constexpr size_t kProxyV2Fixed = 16;       // signature, version/command, family, length
constexpr size_t kProxyV2MaxLen = 4096;    // the most lnet accepts after the fixed part

// One connection's parser: proxy_reset, then proxy_feed until the status
// is no longer NeedMore.
struct ProxyParser {
  ProxyMode mode = ProxyMode::Any;
  ProxyStatus status = ProxyStatus::NeedMore;
  const char* error = "";     // static text once Invalid
  ProxyHeader header;         // valid once Done
  int version = 0;            // 0 until the first bytes decide it
  size_t have = 0;            // header bytes stored in buf
  size_t need = 0;            // v2: the total length, once known
  unsigned char* buf = nullptr;  // v2's header (malloc'd); v1 uses line
  char line[kProxyV1Max + 1] = {};

  ProxyParser() = default;
  ProxyParser(const ProxyParser&) = delete;
  ProxyParser& operator=(const ProxyParser&) = delete;
  ~ProxyParser();
};

// Starts (or restarts) p for a new connection.
void proxy_reset(ProxyParser* p, ProxyMode mode) noexcept;

// Feeds bytes that arrived. Consumes at most the header's bytes: the return
// value is how many of data belong to the header; the rest (when p->status
// becomes Done) is the client's stream. On Invalid the connection must be
// closed; p->error says why.
size_t proxy_feed(ProxyParser* p, const char* data, size_t len) noexcept;

// Frees the v2 buffer (the header's TLVs point into it).
void proxy_free(ProxyParser* p) noexcept;

// Looks up TLV type in a done header: its value and length; false if absent.
bool proxy_tlv(const ProxyHeader* h, uint8_t type, const unsigned char** value,
               size_t* len) noexcept;

// A trusted source: an IPv4 or IPv6 network (prefix bits).
struct ProxyCidr {
  int family = AF_UNSPEC;
  unsigned char addr[16] = {};
  int prefix = 0;
};

// Parses "1.2.3.4", "10.0.0.0/8", "::1", "fd00::/8"; false when invalid
// (bits set past the prefix are allowed and ignored).
bool proxy_parse_cidr(const char* text, ProxyCidr* out) noexcept;

// Whether the address (IPv4, IPv6, or IPv4-mapped IPv6) lies in one of the
// networks.
bool proxy_trusted(const sockaddr* sa, const ProxyCidr* list, size_t n) noexcept;

// Writes the header that says src -> dst (both INET or both INET6; null or
// another family: v1 "UNKNOWN" / v2 LOCAL) into out: its length, 0 when
// out is too small. version is 1 or 2; v2 adds the TLVs given (may be null).
struct ProxyTlvOut {
  uint8_t type = 0;
  const char* value = nullptr;
  size_t len = 0;
};
size_t proxy_build(int version, const sockaddr* src, const sockaddr* dst, const ProxyTlvOut* tlvs,
                   size_t ntlvs, unsigned char* out, size_t cap) noexcept;

}  // namespace lnet
