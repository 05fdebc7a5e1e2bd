// The PROXY protocol parser (lnet/proxy_protocol.cc) on its own: v1 and v2
// over IPv4, IPv6, UNIX, UNKNOWN and LOCAL, every header split at every
// byte, the limits, lying lengths, the trusted-source check, the client
// side's header, and a fuzz run (a fixed seed and a random one, printed).
#define BOOST_TEST_MODULE proxy_protocol
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>

#include <algorithm>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../lnet/proxy_protocol.hh"

using lnet::ProxyCidr;
using lnet::ProxyMode;
using lnet::ProxyParser;
using lnet::ProxyStatus;

namespace {

// The padding that makes "PROXY UNKNOWN " + pad + "\r\n" exactly 107 bytes.
size_t kProxyV1MaxPad() { return lnet::kProxyV1Max - 14 - 2; }

const std::string kSig("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

struct Fed {
  ProxyStatus status = ProxyStatus::NeedMore;
  size_t used = 0;  // bytes the parser took
  std::string error;
};

// Feeds data in pieces that end at the given cut points; stops taking at the
// first status other than NeedMore, as a connection would.
Fed feed(ProxyParser* p, const std::string& data, const std::vector<size_t>& cuts) {
  Fed f;
  size_t at = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(data.size());
  for (size_t end : ends) {
    if (end < at) continue;
    size_t n = lnet::proxy_feed(p, data.data() + at, end - at);
    BOOST_REQUIRE_LE(n, end - at);
    f.used += n;
    if (p->status != ProxyStatus::NeedMore) {
      f.status = p->status;
      f.error = p->error;
      return f;
    }
    BOOST_REQUIRE_EQUAL(n, end - at);  // NeedMore: everything was header
    at = end;
  }
  f.status = p->status;
  return f;
}

Fed feed_whole(ProxyParser* p, const std::string& data, ProxyMode mode = ProxyMode::Any) {
  lnet::proxy_reset(p, mode);
  return feed(p, data, {});
}

std::string ip_of(const sockaddr_storage& ss, int* port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &s->sin_addr, text, sizeof text);
    *port = ntohs(s->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof text);
    *port = ntohs(s->sin6_port);
  }
  return text;
}

std::string be16(size_t v) {
  return std::string{static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}

std::string tlv(uint8_t type, const std::string& value) {
  return std::string(1, static_cast<char>(type)) + be16(value.size()) + value;
}

// A v2 header: command byte, family byte, the body after the fixed part.
std::string v2(uint8_t cmd, uint8_t fam, const std::string& body) {
  return kSig + std::string{static_cast<char>(cmd), static_cast<char>(fam)} + be16(body.size()) +
         body;
}

std::string v2_inet(const char* src, const char* dst, int sport, int dport,
                    const std::string& tlvs = "") {
  unsigned char a[4], b[4];
  inet_pton(AF_INET, src, a);
  inet_pton(AF_INET, dst, b);
  std::string body(reinterpret_cast<char*>(a), 4);
  body += std::string(reinterpret_cast<char*>(b), 4);
  body += be16(static_cast<size_t>(sport)) + be16(static_cast<size_t>(dport)) + tlvs;
  return v2(0x21, 0x11, body);
}

std::string v2_inet6(const char* src, const char* dst, int sport, int dport) {
  unsigned char a[16], b[16];
  inet_pton(AF_INET6, src, a);
  inet_pton(AF_INET6, dst, b);
  std::string body(reinterpret_cast<char*>(a), 16);
  body += std::string(reinterpret_cast<char*>(b), 16);
  body += be16(static_cast<size_t>(sport)) + be16(static_cast<size_t>(dport));
  return v2(0x21, 0x21, body);
}

// Every valid header of the tests, with the source each must report.
struct Valid {
  std::string header;
  int version;
  int family;
  bool local;
  std::string src_ip;
  int src_port;
};

std::vector<Valid> valid_headers() {
  std::string unix_body(216, '\0');
  std::memcpy(&unix_body[0], "/run/src.sock", 13);
  std::memcpy(&unix_body[108], "/run/dst.sock", 13);
  std::string padded_unknown = "PROXY UNKNOWN ";
  padded_unknown += std::string(kProxyV1MaxPad(), 'x');
  padded_unknown += "\r\n";
  return {
      {"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n", 1, AF_INET, false, "192.0.2.7", 56324},
      {"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n", 1, AF_INET6, false, "2001:db8::7",
       65535},
      {"PROXY UNKNOWN\r\n", 1, AF_UNSPEC, false, "", 0},
      {"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", 1, AF_UNSPEC, false, "",
       0},
      {padded_unknown, 1, AF_UNSPEC, false, "", 0},  // exactly 107 bytes
      {v2_inet("203.0.113.9", "127.0.0.1", 40000, 8080), 2, AF_INET, false, "203.0.113.9",
       40000},
      {v2_inet6("2001:db8::9", "::1", 1, 2), 2, AF_INET6, false, "2001:db8::9", 1},
      {v2(0x21, 0x31, unix_body), 2, AF_UNIX, false, "", 0},
      {v2(0x20, 0x00, ""), 2, AF_UNSPEC, true, "", 0},                       // LOCAL
      {v2(0x20, 0x11, std::string(12, '\x01')), 2, AF_UNSPEC, true, "", 0},  // LOCAL, block ignored
      {v2(0x21, 0x00, tlv(lnet::kPp2Noop, "")), 2, AF_UNSPEC, false, "", 0},  // PROXY, UNSPEC
      {v2_inet("10.1.2.3", "10.0.0.1", 5, 6,
               tlv(lnet::kPp2Alpn, "h2") + tlv(lnet::kPp2Authority, "example.com") +
                   tlv(lnet::kPp2UniqueId, "abc")),
       2, AF_INET, false, "10.1.2.3", 5},
  };
}

}  // namespace

BOOST_AUTO_TEST_CASE(valid_headers_whole_and_split_at_every_byte) {
  const std::string tail = "GET / HTTP/1.0\r\n\r\n";
  for (const Valid& v : valid_headers()) {
    std::string data = v.header + tail;
    for (size_t cut = 0; cut <= data.size(); cut++) {
      ProxyParser p;
      lnet::proxy_reset(&p, ProxyMode::Any);
      Fed f = feed(&p, data, {cut});
      BOOST_TEST_CONTEXT("header " << v.header.size() << " bytes, split at " << cut) {
        BOOST_REQUIRE(f.status == ProxyStatus::Done);
        BOOST_CHECK_EQUAL(f.used, v.header.size());
        BOOST_CHECK_EQUAL(p.header.version, v.version);
        BOOST_CHECK_EQUAL(p.header.family, v.family);
        BOOST_CHECK_EQUAL(p.header.local, v.local);
        if (v.family == AF_INET || v.family == AF_INET6) {
          int port = -1;
          BOOST_CHECK_EQUAL(ip_of(p.header.src, &port), v.src_ip);
          BOOST_CHECK_EQUAL(port, v.src_port);
        }
      }
    }
    // One byte at a time, and in the mode of its own version.
    std::vector<size_t> every;
    for (size_t i = 1; i < data.size(); i++) every.push_back(i);
    ProxyParser p;
    lnet::proxy_reset(&p, v.version == 1 ? ProxyMode::V1 : ProxyMode::V2);
    Fed f = feed(&p, data, every);
    BOOST_CHECK(f.status == ProxyStatus::Done);
    BOOST_CHECK_EQUAL(f.used, v.header.size());
    // The other version's mode refuses it.
    Fed other = feed_whole(&p, data, v.version == 1 ? ProxyMode::V2 : ProxyMode::V1);
    BOOST_CHECK(other.status == ProxyStatus::Invalid);
  }
}

BOOST_AUTO_TEST_CASE(v2_details) {
  ProxyParser p;
  std::string h = v2_inet("10.1.2.3", "10.0.0.1", 5, 6,
                          tlv(lnet::kPp2Alpn, "h2") + tlv(lnet::kPp2UniqueId, "abc"));
  BOOST_REQUIRE(feed_whole(&p, h).status == ProxyStatus::Done);
  const unsigned char* v = nullptr;
  size_t n = 0;
  BOOST_REQUIRE(lnet::proxy_tlv(&p.header, lnet::kPp2Alpn, &v, &n));
  BOOST_CHECK_EQUAL(std::string(reinterpret_cast<const char*>(v), n), "h2");
  BOOST_REQUIRE(lnet::proxy_tlv(&p.header, lnet::kPp2UniqueId, &v, &n));
  BOOST_CHECK_EQUAL(std::string(reinterpret_cast<const char*>(v), n), "abc");
  BOOST_CHECK(!lnet::proxy_tlv(&p.header, lnet::kPp2Authority, &v, &n));
  int port = 0;
  BOOST_CHECK_EQUAL(ip_of(p.header.dst, &port), "10.0.0.1");
  BOOST_CHECK_EQUAL(port, 6);
  BOOST_CHECK_EQUAL(p.header.socktype, SOCK_STREAM);

  // UNIX paths.
  std::string unix_body(216, '\0');
  std::memcpy(&unix_body[0], "/run/src.sock", 13);
  BOOST_REQUIRE(feed_whole(&p, v2(0x21, 0x31, unix_body)).status == ProxyStatus::Done);
  BOOST_CHECK_EQUAL(reinterpret_cast<const sockaddr_un*>(&p.header.src)->sun_path,
                    std::string("/run/src.sock"));

  // A CRC32C TLV that matches (computed by the client side), and one that does not.
  sockaddr_in s{}, d{};
  s.sin_family = d.sin_family = AF_INET;
  inet_pton(AF_INET, "192.0.2.1", &s.sin_addr);
  inet_pton(AF_INET, "192.0.2.2", &d.sin_addr);
  s.sin_port = htons(1000);
  d.sin_port = htons(2000);
  lnet::ProxyTlvOut crc{lnet::kPp2Crc32c, "\0\0\0\0", 4};
  unsigned char out[256];
  size_t len = lnet::proxy_build(2, reinterpret_cast<sockaddr*>(&s), reinterpret_cast<sockaddr*>(&d),
                                 &crc, 1, out, sizeof out);
  BOOST_REQUIRE_GT(len, 0u);
  std::string hdr(reinterpret_cast<char*>(out), len);
  BOOST_CHECK(feed_whole(&p, hdr).status == ProxyStatus::Invalid);  // zero CRC is wrong
  BOOST_CHECK_EQUAL(p.error, "v2: malformed TLVs or bad CRC32C");
  // Compute the right one: CRC32C (Castagnoli) over the header with the field zeroed.
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : hdr) {
    c ^= b;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  c = ~c;
  hdr[len - 4] = static_cast<char>(c >> 24);
  hdr[len - 3] = static_cast<char>(c >> 16);
  hdr[len - 2] = static_cast<char>(c >> 8);
  hdr[len - 1] = static_cast<char>(c);
  BOOST_CHECK(feed_whole(&p, hdr).status == ProxyStatus::Done);
}

BOOST_AUTO_TEST_CASE(invalid_headers) {
  struct Bad {
    std::string data;
    const char* why;
  };
  std::string v1_108(108, 'x');
  std::memcpy(&v1_108[0], "PROXY UNKNOWN ", 14);
  std::string v1_107_no_crlf = v1_108.substr(0, 107);
  std::vector<Bad> bad = {
      {"GET / HTTP/1.1\r\n", "not a PROXY protocol header"},
      {"PROXY\r\n", "not a PROXY protocol header"},
      {"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"},
      {v1_108, "v1: header longer than 107 bytes"},
      {v1_107_no_crlf + "\r\n", "v1: header longer than 107 bytes"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1: LF without CR"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "v1: CR not followed by LF"},
      {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1: missing field"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "v1: extra field"},
      {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "v1: extra field"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "v1: invalid port"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "v1: invalid port"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "v1: invalid port"},
      {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "v1: invalid address"},
      {"PROXY TCP4 ::1 ::1 1 2\r\n", "v1: invalid address"},
      {"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "v1: invalid address"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x01\r\n", "v1: control or non-ASCII byte"},
      {"PROXY UNKNOWNX\r\n", "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
      {kSig.substr(0, 11) + "X", "not a PROXY protocol header"},
      {v2(0x11, 0x11, std::string(12, '\0')), "v2: unknown version or command"},
      {v2(0x22, 0x11, std::string(12, '\0')), "v2: unknown version or command"},
      {v2(0x21, 0x41, std::string(12, '\0')), "v2: unknown address family or transport"},
      {v2(0x21, 0x13, std::string(12, '\0')), "v2: unknown address family or transport"},
      // A length that lies: shorter than the IPv4 / IPv6 / UNIX block.
      {v2(0x21, 0x11, std::string(11, '\0')), "v2: length shorter than the address block"},
      {v2(0x21, 0x21, std::string(12, '\0')), "v2: length shorter than the address block"},
      {v2(0x21, 0x31, std::string(215, '\0')), "v2: length shorter than the address block"},
      // Longer than the block, and what follows is no TLV.
      {v2(0x21, 0x11, std::string(12, '\0') + "\x01\x00\x09" "ab"), "v2: malformed TLVs or bad CRC32C"},
      {v2(0x21, 0x11, std::string(12, '\0') + "\x01"), "v2: malformed TLVs or bad CRC32C"},
      {kSig + "\x21\x11" + be16(4097), "v2: header longer than 4096 bytes"},
      {kSig + "\x21\x11\xff\xff", "v2: header longer than 4096 bytes"},
  };
  for (const Bad& b : bad) {
    ProxyParser p;
    lnet::proxy_reset(&p, ProxyMode::Any);
    Fed f = feed(&p, b.data + "trailing bytes", {});
    BOOST_TEST_CONTEXT("input: " << b.data) {
      BOOST_CHECK(f.status == ProxyStatus::Invalid);
      BOOST_CHECK_EQUAL(f.error, b.why);
      BOOST_CHECK_LE(f.used, b.data.size());
    }
    // Byte by byte: the same verdict, never later than the whole feed.
    std::vector<size_t> every;
    for (size_t i = 1; i < b.data.size(); i++) every.push_back(i);
    ProxyParser q;
    lnet::proxy_reset(&q, ProxyMode::Any);
    Fed g = feed(&q, b.data + "trailing bytes", every);
    BOOST_CHECK(g.status == ProxyStatus::Invalid);
    BOOST_CHECK_EQUAL(g.error, b.why);
  }
  // The 108-byte v1 line is refused at its 107th byte, before any CRLF.
  ProxyParser p;
  lnet::proxy_reset(&p, ProxyMode::V1);
  BOOST_CHECK_EQUAL(lnet::proxy_feed(&p, v1_108.data(), v1_108.size()), lnet::kProxyV1Max);
  BOOST_CHECK(p.status == ProxyStatus::Invalid);
}

BOOST_AUTO_TEST_CASE(v2_length_longer_than_sent_waits) {
  // The length promises 40 bytes, 12 come: the parser waits (the server's
  // header timeout ends it) and takes nothing past the promise.
  std::string h = kSig + "\x21\x11" + be16(40) + std::string(12, '\x01');
  ProxyParser p;
  Fed f = feed_whole(&p, h);
  BOOST_CHECK(f.status == ProxyStatus::NeedMore);
  BOOST_CHECK_EQUAL(f.used, h.size());
  std::string more(100, '\0');
  size_t n = lnet::proxy_feed(&p, more.data(), more.size());
  BOOST_CHECK_EQUAL(n, 28u);
  BOOST_CHECK(p.status != ProxyStatus::Done);  // 28 zero bytes are no TLVs
}

BOOST_AUTO_TEST_CASE(trusted_sources) {
  std::vector<ProxyCidr> list(4);
  BOOST_REQUIRE(lnet::proxy_parse_cidr("127.0.0.1", &list[0]));
  BOOST_REQUIRE(lnet::proxy_parse_cidr("10.0.0.0/8", &list[1]));
  BOOST_REQUIRE(lnet::proxy_parse_cidr("fd00::/8", &list[2]));
  BOOST_REQUIRE(lnet::proxy_parse_cidr("192.168.1.128/25", &list[3]));
  for (const char* bad : {"", "/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8x",
                          "example.com", "10.0.0.0/-1", "1.2.3.4/0008"}) {
    ProxyCidr c;
    BOOST_CHECK_MESSAGE(!lnet::proxy_parse_cidr(bad, &c), bad);
  }
  auto v4 = [&](const char* ip) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &s.sin_addr);
    return lnet::proxy_trusted(reinterpret_cast<sockaddr*>(&s), list.data(), list.size());
  };
  auto v6 = [&](const char* ip) {
    sockaddr_in6 s{};
    s.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &s.sin6_addr);
    return lnet::proxy_trusted(reinterpret_cast<sockaddr*>(&s), list.data(), list.size());
  };
  BOOST_CHECK(v4("127.0.0.1"));
  BOOST_CHECK(!v4("127.0.0.2"));
  BOOST_CHECK(v4("10.200.3.4"));
  BOOST_CHECK(!v4("11.0.0.1"));
  BOOST_CHECK(v4("192.168.1.200"));
  BOOST_CHECK(!v4("192.168.1.127"));
  BOOST_CHECK(v6("fd12::1"));
  BOOST_CHECK(!v6("fe80::1"));
  BOOST_CHECK(v6("::ffff:127.0.0.1"));  // IPv4-mapped
  BOOST_CHECK(!v6("::1"));
}

BOOST_AUTO_TEST_CASE(client_header_round_trip) {
  sockaddr_in6 s{}, d{};
  s.sin6_family = d.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::5", &s.sin6_addr);
  inet_pton(AF_INET6, "::1", &d.sin6_addr);
  s.sin6_port = htons(12345);
  d.sin6_port = htons(80);
  unsigned char out[512];
  for (int version : {1, 2}) {
    lnet::ProxyTlvOut t{lnet::kPp2Authority, "example.org", 11};
    size_t n = lnet::proxy_build(version, reinterpret_cast<sockaddr*>(&s),
                                 reinterpret_cast<sockaddr*>(&d), &t, 1, out, sizeof out);
    BOOST_REQUIRE_GT(n, 0u);
    ProxyParser p;
    Fed f = feed_whole(&p, std::string(reinterpret_cast<char*>(out), n));
    BOOST_REQUIRE(f.status == ProxyStatus::Done);
    BOOST_CHECK_EQUAL(f.used, n);
    BOOST_CHECK_EQUAL(p.header.version, version);
    int port = 0;
    BOOST_CHECK_EQUAL(ip_of(p.header.src, &port), "2001:db8::5");
    BOOST_CHECK_EQUAL(port, 12345);
    if (version == 2) {
      const unsigned char* v = nullptr;
      size_t len = 0;
      BOOST_REQUIRE(lnet::proxy_tlv(&p.header, lnet::kPp2Authority, &v, &len));
      BOOST_CHECK_EQUAL(std::string(reinterpret_cast<const char*>(v), len), "example.org");
    }
    // No addresses: v1 UNKNOWN, v2 LOCAL.
    n = lnet::proxy_build(version, nullptr, nullptr, nullptr, 0, out, sizeof out);
    BOOST_REQUIRE(feed_whole(&p, std::string(reinterpret_cast<char*>(out), n)).status ==
                  ProxyStatus::Done);
    BOOST_CHECK_EQUAL(p.header.family, AF_UNSPEC);
    BOOST_CHECK_EQUAL(p.header.local, version == 2);
  }
  BOOST_CHECK_EQUAL(lnet::proxy_build(2, nullptr, nullptr, nullptr, 0, out, 15), 0u);
}

namespace {

// Random bytes, random mutations of valid headers, random splits. The
// invariants: the parser never takes more than it is given, a Done header
// took exactly its own bytes (the rest is left for the stream), a verdict
// never changes, and (under ASan) no byte is read or written out of bounds.
void fuzz(uint32_t seed, int rounds) {
  std::mt19937 rng(seed);
  std::vector<Valid> valid = valid_headers();
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  for (int round = 0; round < rounds; round++) {
    std::string data;
    switch (rng() % 4) {
      case 0:  // noise
        data.resize(pick(300));
        for (char& c : data) c = static_cast<char>(rng());
        break;
      case 1:  // noise after a valid prefix
        data = rng() % 2 ? std::string("PROXY ") : kSig;
        for (size_t i = pick(200); i > 0; i--) data += static_cast<char>(rng());
        break;
      default: {  // a valid header with some bytes changed, cut short or extended
        data = valid[pick(valid.size())].header;
        for (size_t i = pick(4); i > 0; i--) data[pick(data.size())] = static_cast<char>(rng());
        if (rng() % 4 == 0) data.resize(pick(data.size() + 1));
        for (size_t i = pick(20); i > 0; i--) data += static_cast<char>(rng());
        break;
      }
    }
    std::vector<size_t> cuts;
    for (size_t i = pick(6); i > 0 && !data.empty(); i--) cuts.push_back(pick(data.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    ProxyMode mode = static_cast<ProxyMode>(1 + rng() % 3);
    ProxyParser p;
    lnet::proxy_reset(&p, mode);
    Fed f = feed(&p, data, cuts);
    BOOST_REQUIRE_LE(f.used, data.size());
    if (f.status == ProxyStatus::Done) {
      BOOST_REQUIRE(p.header.version == 1 || p.header.version == 2);
      // The same bytes whole give the same verdict and length.
      ProxyParser q;
      Fed g = feed_whole(&q, data, mode);
      BOOST_REQUIRE(g.status == ProxyStatus::Done);
      BOOST_REQUIRE_EQUAL(g.used, f.used);
      if (p.header.version == 1) BOOST_REQUIRE_LE(f.used, lnet::kProxyV1Max);
      // Nothing more is taken after the verdict.
      BOOST_REQUIRE_EQUAL(lnet::proxy_feed(&p, "x", 1), 0u);
    } else if (f.status == ProxyStatus::Invalid) {
      BOOST_REQUIRE(p.error != nullptr && *p.error);
      BOOST_REQUIRE_EQUAL(lnet::proxy_feed(&p, "x", 1), 0u);
    } else {
      BOOST_REQUIRE_EQUAL(f.used, data.size());
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(fuzz_fixed_seed) { fuzz(20261129u, 200000); }

BOOST_AUTO_TEST_CASE(fuzz_random_seed) {
  uint32_t seed = std::random_device{}();
  std::printf("proxy_protocol fuzz: random seed %u (rerun: fuzz(%u, ...))\n", seed, seed);
  std::fflush(stdout);
  BOOST_TEST_MESSAGE("random seed " << seed);
  fuzz(seed, 200000);
}
