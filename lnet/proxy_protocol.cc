#include "proxy_protocol.hh"

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lnet {

// The specification: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
// Both versions are decided by their first bytes; every byte is checked as
// it arrives, so garbage is refused at once instead of at a timeout, and
// nothing after the header is ever consumed.

namespace {

const char kV1Prefix[] = "PROXY ";  // 6 bytes
const unsigned char kV2Sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

ProxyStatus refuse(ProxyParser* p, const char* why) noexcept {
  p->status = ProxyStatus::Invalid;
  p->error = why;
  return p->status;
}

// ------------------------------------------------------------------- v1

// A decimal port: 1 to 5 digits, no leading zero, at most 65535.
bool v1_port(const char* s, size_t n, int* port) noexcept {
  if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return false;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (v > 65535) return false;
  *port = v;
  return true;
}

bool v1_addr(int family, const char* s, size_t n, int port, sockaddr_storage* out) noexcept {
  char text[INET6_ADDRSTRLEN + 1];
  if (n == 0 || n >= sizeof text) return false;
  std::memcpy(text, s, n);
  text[n] = '\0';
  std::memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(static_cast<uint16_t>(port));
  return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
}

// The complete line (CRLF included) in p->line.
ProxyStatus v1_parse(ProxyParser* p) noexcept {
  const char* s = p->line + 6;  // after "PROXY "
  const char* end = p->line + p->have - 2;  // at the CR
  ProxyHeader* h = &p->header;
  h->version = 1;
  h->socktype = SOCK_STREAM;
  if (end - s >= 7 && std::memcmp(s, "UNKNOWN", 7) == 0 && (end - s == 7 || s[7] == ' ')) {
    // Anything may follow UNKNOWN; the receiver ignores it.
    h->family = AF_UNSPEC;
    p->status = ProxyStatus::Done;
    return p->status;
  }
  if (end - s < 5 || (std::memcmp(s, "TCP4 ", 5) != 0 && std::memcmp(s, "TCP6 ", 5) != 0))
    return refuse(p, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
  int family = s[3] == '4' ? AF_INET : AF_INET6;
  s += 5;
  // Exactly four fields separated by single spaces.
  const char* field[4];
  size_t flen[4];
  for (int i = 0; i < 4; i++) {
    const char* sp = static_cast<const char*>(std::memchr(s, ' ', static_cast<size_t>(end - s)));
    const char* fe = i < 3 ? sp : end;
    if (i < 3 && sp == nullptr) return refuse(p, "v1: missing field");
    if (i == 3 && sp != nullptr) return refuse(p, "v1: extra field");
    field[i] = s;
    flen[i] = static_cast<size_t>(fe - s);
    s = fe + 1;
  }
  int sport = 0, dport = 0;
  if (!v1_port(field[2], flen[2], &sport) || !v1_port(field[3], flen[3], &dport))
    return refuse(p, "v1: invalid port");
  if (!v1_addr(family, field[0], flen[0], sport, &h->src) ||
      !v1_addr(family, field[1], flen[1], dport, &h->dst))
    return refuse(p, "v1: invalid address");
  h->family = family;
  p->status = ProxyStatus::Done;
  return p->status;
}

size_t v1_feed(ProxyParser* p, const char* data, size_t len) noexcept {
  size_t used = 0;
  while (used < len) {
    char ch = data[used++];
    if (p->have < 6) {
      if (ch != kV1Prefix[p->have]) {
        refuse(p, "not a PROXY protocol header");
        return used;
      }
      p->line[p->have++] = ch;
      continue;
    }
    if (p->have > 6 && p->line[p->have - 1] == '\r' && ch != '\n') {
      refuse(p, "v1: CR not followed by LF");
      return used;
    }
    if (ch == '\n' && p->line[p->have - 1] != '\r') {
      refuse(p, "v1: LF without CR");
      return used;
    }
    if (ch != '\r' && ch != '\n' && (static_cast<unsigned char>(ch) < 0x20 ||
                                     static_cast<unsigned char>(ch) > 0x7e)) {
      refuse(p, "v1: control or non-ASCII byte");
      return used;
    }
    p->line[p->have++] = ch;
    if (ch == '\n') {
      p->line[p->have] = '\0';
      v1_parse(p);
      return used;
    }
    if (p->have >= kProxyV1Max) {
      refuse(p, "v1: header longer than 107 bytes");
      return used;
    }
  }
  return used;
}

// ------------------------------------------------------------------- v2

uint32_t crc32c(const unsigned char* data, size_t n) noexcept {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    crc ^= data[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// TLVs fill [at, at + n) exactly; a CRC32C TLV, when present, matches.
bool v2_tlvs_valid(unsigned char* hdr, size_t total, size_t at) noexcept {
  size_t i = at;
  while (i < total) {
    if (total - i < 3) return false;
    size_t vlen = (static_cast<size_t>(hdr[i + 1]) << 8) | hdr[i + 2];
    if (total - i - 3 < vlen) return false;
    if (hdr[i] == kPp2Crc32c) {
      if (vlen != 4) return false;
      unsigned char want[4];
      std::memcpy(want, hdr + i + 3, 4);
      std::memset(hdr + i + 3, 0, 4);
      uint32_t got = crc32c(hdr, total);
      std::memcpy(hdr + i + 3, want, 4);
      uint32_t w = (uint32_t{want[0]} << 24) | (uint32_t{want[1]} << 16) |
                   (uint32_t{want[2]} << 8) | want[3];
      if (got != w) return false;
    }
    i += 3 + vlen;
  }
  return true;
}

ProxyStatus v2_parse(ProxyParser* p) noexcept {
  unsigned char* b = p->buf;
  ProxyHeader* h = &p->header;
  h->version = 2;
  h->local = (b[12] & 0x0F) == 0;
  int fam = b[13] >> 4;
  int proto = b[13] & 0x0F;
  h->socktype = proto == 1 ? SOCK_STREAM : proto == 2 ? SOCK_DGRAM : 0;
  size_t len = p->need - kProxyV2Fixed;
  size_t alen = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
  if (h->local) {
    // LOCAL: the block is the proxy's own business; keep well-formed TLVs.
    h->family = AF_UNSPEC;
    if (alen <= len && v2_tlvs_valid(b, p->need, kProxyV2Fixed + alen)) {
      h->tlvs = b + kProxyV2Fixed + alen;
      h->tlvs_len = len - alen;
    }
    p->status = ProxyStatus::Done;
    return p->status;
  }
  if (len < alen) return refuse(p, "v2: length shorter than the address block");
  const unsigned char* a = b + kProxyV2Fixed;
  std::memset(&h->src, 0, sizeof h->src);
  std::memset(&h->dst, 0, sizeof h->dst);
  if (fam == 1) {
    auto* s = reinterpret_cast<sockaddr_in*>(&h->src);
    auto* d = reinterpret_cast<sockaddr_in*>(&h->dst);
    s->sin_family = d->sin_family = AF_INET;
    std::memcpy(&s->sin_addr, a, 4);
    std::memcpy(&d->sin_addr, a + 4, 4);
    std::memcpy(&s->sin_port, a + 8, 2);
    std::memcpy(&d->sin_port, a + 10, 2);
    h->family = AF_INET;
  } else if (fam == 2) {
    auto* s = reinterpret_cast<sockaddr_in6*>(&h->src);
    auto* d = reinterpret_cast<sockaddr_in6*>(&h->dst);
    s->sin6_family = d->sin6_family = AF_INET6;
    std::memcpy(&s->sin6_addr, a, 16);
    std::memcpy(&d->sin6_addr, a + 16, 16);
    std::memcpy(&s->sin6_port, a + 32, 2);
    std::memcpy(&d->sin6_port, a + 34, 2);
    h->family = AF_INET6;
  } else if (fam == 3) {
    auto* s = reinterpret_cast<sockaddr_un*>(&h->src);
    auto* d = reinterpret_cast<sockaddr_un*>(&h->dst);
    s->sun_family = d->sun_family = AF_UNIX;
    std::memcpy(s->sun_path, a, 108);
    std::memcpy(d->sun_path, a + 108, 108);
    s->sun_path[107] = d->sun_path[107] = '\0';
    h->family = AF_UNIX;
  } else {
    h->family = AF_UNSPEC;
  }
  if (!v2_tlvs_valid(b, p->need, kProxyV2Fixed + alen))
    return refuse(p, "v2: malformed TLVs or bad CRC32C");
  h->tlvs = b + kProxyV2Fixed + alen;
  h->tlvs_len = len - alen;
  p->status = ProxyStatus::Done;
  return p->status;
}

size_t v2_feed(ProxyParser* p, const char* data, size_t len) noexcept {
  const auto* d = reinterpret_cast<const unsigned char*>(data);
  size_t used = 0;
  // The fixed part goes to line (as bytes), checked as it arrives.
  while (used < len && p->have < kProxyV2Fixed) {
    unsigned char ch = d[used++];
    size_t at = p->have;
    if (at < 12 && ch != kV2Sig[at]) {
      refuse(p, "not a PROXY protocol header");
      return used;
    }
    if (at == 12 && ((ch >> 4) != 2 || (ch & 0x0F) > 1)) {
      refuse(p, "v2: unknown version or command");
      return used;
    }
    if (at == 13 && ((ch >> 4) > 3 || (ch & 0x0F) > 2)) {
      refuse(p, "v2: unknown address family or transport");
      return used;
    }
    p->line[p->have++] = static_cast<char>(ch);
    if (p->have == kProxyV2Fixed) {
      const auto* f = reinterpret_cast<const unsigned char*>(p->line);
      size_t body = (static_cast<size_t>(f[14]) << 8) | f[15];
      if (body > kProxyV2MaxLen) {
        refuse(p, "v2: header longer than 4096 bytes");
        return used;
      }
      p->need = kProxyV2Fixed + body;
      p->buf = static_cast<unsigned char*>(std::malloc(p->need));
      if (p->buf == nullptr) {
        refuse(p, "out of memory");
        return used;
      }
      std::memcpy(p->buf, p->line, kProxyV2Fixed);
    }
  }
  if (p->have < kProxyV2Fixed) return used;
  size_t take = p->need - p->have;
  if (take > len - used) take = len - used;
  std::memcpy(p->buf + p->have, d + used, take);
  p->have += take;
  used += take;
  if (p->have == p->need) v2_parse(p);
  return used;
}

}  // namespace

ProxyParser::~ProxyParser() { proxy_free(this); }

void proxy_free(ProxyParser* p) noexcept {
  std::free(p->buf);
  p->buf = nullptr;
  p->header.tlvs = nullptr;
  p->header.tlvs_len = 0;
}

void proxy_reset(ProxyParser* p, ProxyMode mode) noexcept {
  proxy_free(p);
  p->mode = mode;
  p->status = ProxyStatus::NeedMore;
  p->error = "";
  p->header = ProxyHeader();
  p->version = mode == ProxyMode::V1 ? 1 : mode == ProxyMode::V2 ? 2 : 0;
  p->have = p->need = 0;
}

size_t proxy_feed(ProxyParser* p, const char* data, size_t len) noexcept {
  if (p->status != ProxyStatus::NeedMore || len == 0) return 0;
  if (p->version == 0) {  // "any": the first byte decides
    if (data[0] == 'P') {
      p->version = 1;
    } else if (static_cast<unsigned char>(data[0]) == kV2Sig[0]) {
      p->version = 2;
    } else {
      refuse(p, "not a PROXY protocol header");
      return 1;
    }
  }
  return p->version == 1 ? v1_feed(p, data, len) : v2_feed(p, data, len);
}

bool proxy_tlv(const ProxyHeader* h, uint8_t type, const unsigned char** value,
               size_t* len) noexcept {
  size_t i = 0;
  while (h->tlvs && i + 3 <= h->tlvs_len) {
    size_t vlen = (static_cast<size_t>(h->tlvs[i + 1]) << 8) | h->tlvs[i + 2];
    if (i + 3 + vlen > h->tlvs_len) return false;
    if (h->tlvs[i] == type) {
      *value = h->tlvs + i + 3;
      *len = vlen;
      return true;
    }
    i += 3 + vlen;
  }
  return false;
}

// ------------------------------------------------------------ trusted sources

bool proxy_parse_cidr(const char* text, ProxyCidr* out) noexcept {
  char addr[INET6_ADDRSTRLEN + 1];
  const char* slash = std::strchr(text, '/');
  size_t n = slash ? static_cast<size_t>(slash - text) : std::strlen(text);
  if (n == 0 || n >= sizeof addr) return false;
  std::memcpy(addr, text, n);
  addr[n] = '\0';
  *out = ProxyCidr();
  int max;
  if (inet_pton(AF_INET, addr, out->addr) == 1) {
    out->family = AF_INET;
    max = 32;
  } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
    out->family = AF_INET6;
    max = 128;
  } else {
    return false;
  }
  out->prefix = max;
  if (slash) {
    const char* s = slash + 1;
    size_t sl = std::strlen(s);
    if (sl == 0 || sl > 3) return false;
    int v = 0;
    for (size_t i = 0; i < sl; i++) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    if (v > max) return false;
    out->prefix = v;
  }
  return true;
}

namespace {

bool prefix_match(const unsigned char* a, const unsigned char* b, int bits) noexcept {
  int whole = bits / 8;
  if (std::memcmp(a, b, static_cast<size_t>(whole)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  unsigned mask = (0xFFu << (8 - rest)) & 0xFFu;
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

bool proxy_trusted(const sockaddr* sa, const ProxyCidr* list, size_t n) noexcept {
  unsigned char v4[4], v6[16];
  bool has4 = false, has6 = false;
  if (sa->sa_family == AF_INET) {
    std::memcpy(v4, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    has4 = true;
  } else if (sa->sa_family == AF_INET6) {
    const auto* a = &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    std::memcpy(v6, a, 16);
    has6 = true;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
      std::memcpy(v4, v6 + 12, 4);
      has4 = true;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (list[i].family == AF_INET && has4 && prefix_match(v4, list[i].addr, list[i].prefix))
      return true;
    if (list[i].family == AF_INET6 && has6 && prefix_match(v6, list[i].addr, list[i].prefix))
      return true;
  }
  return false;
}

// ------------------------------------------------------------ the client side

size_t proxy_build(int version, const sockaddr* src, const sockaddr* dst, const ProxyTlvOut* tlvs,
                   size_t ntlvs, unsigned char* out, size_t cap) noexcept {
  int fam = src && dst && src->sa_family == dst->sa_family &&
                    (src->sa_family == AF_INET || src->sa_family == AF_INET6)
                ? src->sa_family
                : AF_UNSPEC;
  if (version == 1) {
    char line[kProxyV1Max + 1];
    int n;
    if (fam == AF_UNSPEC) {
      n = std::snprintf(line, sizeof line, "PROXY UNKNOWN\r\n");
    } else {
      char sip[INET6_ADDRSTRLEN], dip[INET6_ADDRSTRLEN];
      int sport, dport;
      if (fam == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(src);
        const auto* d = reinterpret_cast<const sockaddr_in*>(dst);
        inet_ntop(AF_INET, &s->sin_addr, sip, sizeof sip);
        inet_ntop(AF_INET, &d->sin_addr, dip, sizeof dip);
        sport = ntohs(s->sin_port);
        dport = ntohs(d->sin_port);
      } else {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(src);
        const auto* d = reinterpret_cast<const sockaddr_in6*>(dst);
        inet_ntop(AF_INET6, &s->sin6_addr, sip, sizeof sip);
        inet_ntop(AF_INET6, &d->sin6_addr, dip, sizeof dip);
        sport = ntohs(s->sin6_port);
        dport = ntohs(d->sin6_port);
      }
      n = std::snprintf(line, sizeof line, "PROXY %s %s %s %d %d\r\n",
                        fam == AF_INET ? "TCP4" : "TCP6", sip, dip, sport, dport);
    }
    if (n < 0 || static_cast<size_t>(n) > cap || static_cast<size_t>(n) > kProxyV1Max) return 0;
    std::memcpy(out, line, static_cast<size_t>(n));
    return static_cast<size_t>(n);
  }
  size_t alen = fam == AF_INET ? 12 : fam == AF_INET6 ? 36 : 0;
  size_t body = alen;
  for (size_t i = 0; i < ntlvs; i++) {
    if (tlvs[i].len > 0xFFFF) return 0;
    body += 3 + tlvs[i].len;
  }
  if (body > 0xFFFF || kProxyV2Fixed + body > cap) return 0;
  std::memcpy(out, kV2Sig, 12);
  out[12] = fam == AF_UNSPEC ? 0x20 : 0x21;  // version 2; LOCAL or PROXY
  out[13] = fam == AF_INET ? 0x11 : fam == AF_INET6 ? 0x21 : 0x00;
  out[14] = static_cast<unsigned char>(body >> 8);
  out[15] = static_cast<unsigned char>(body & 0xFF);
  unsigned char* a = out + kProxyV2Fixed;
  if (fam == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(src);
    const auto* d = reinterpret_cast<const sockaddr_in*>(dst);
    std::memcpy(a, &s->sin_addr, 4);
    std::memcpy(a + 4, &d->sin_addr, 4);
    std::memcpy(a + 8, &s->sin_port, 2);
    std::memcpy(a + 10, &d->sin_port, 2);
  } else if (fam == AF_INET6) {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(src);
    const auto* d = reinterpret_cast<const sockaddr_in6*>(dst);
    std::memcpy(a, &s->sin6_addr, 16);
    std::memcpy(a + 16, &d->sin6_addr, 16);
    std::memcpy(a + 32, &s->sin6_port, 2);
    std::memcpy(a + 34, &d->sin6_port, 2);
  }
  unsigned char* t = a + alen;
  for (size_t i = 0; i < ntlvs; i++) {
    t[0] = tlvs[i].type;
    t[1] = static_cast<unsigned char>(tlvs[i].len >> 8);
    t[2] = static_cast<unsigned char>(tlvs[i].len & 0xFF);
    if (tlvs[i].len) std::memcpy(t + 3, tlvs[i].value, tlvs[i].len);
    t += 3 + tlvs[i].len;
  }
  return kProxyV2Fixed + body;
}

}  // namespace lnet
