#include "framing.hh"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lnet {

namespace {

const char kNewline[] = "\n";

// memmem for one byte is memchr (faster); otherwise glibc's two-way search.
const char* find(const char* p, size_t n, const char* d, size_t dlen) noexcept {
  if (n < dlen) return nullptr;  // also: p may be null when nothing is held
  if (dlen == 1) return static_cast<const char*>(std::memchr(p, d[0], n));
  return static_cast<const char*>(memmem(p, n, d, dlen));
}

void delimiter_of(const FrameSpec& spec, const char** d, size_t* dlen) noexcept {
  if (spec.kind == FrameSpec::Line) {
    *d = kNewline;
    *dlen = 1;
  } else {
    *d = spec.delim;
    *dlen = spec.delim_len;
  }
}

// A delimiter found at pos in p: the message is p[0..pos) (a line also
// drops a '\r' before its '\n').
FrameStatus delimited(const char* p, size_t pos, size_t dlen, const FrameSpec& spec,
                      const char** msg, size_t* len, size_t* used) noexcept {
  size_t body = pos;
  if (spec.kind == FrameSpec::Line && body > 0 && p[body - 1] == '\r') body--;
  if (body > spec.max_message) {
    *len = body;
    return FrameStatus::TooLong;
  }
  *msg = p;
  *len = body;
  *used = pos + dlen;
  return FrameStatus::Message;
}

// No delimiter in n bytes: too long once the bytes cannot end in a
// message of at most max_message (plus a '\r' and a partial delimiter).
FrameStatus undelimited(size_t n, size_t dlen, const FrameSpec& spec, size_t* len) noexcept {
  size_t slack = dlen - 1 + (spec.kind == FrameSpec::Line ? 1 : 0);
  if (n > spec.max_message + slack) {
    *len = n;
    return FrameStatus::TooLong;
  }
  return FrameStatus::More;
}

uint64_t read_length(const unsigned char* p, int nbytes, bool little) noexcept {
  uint64_t v = 0;
  for (int i = 0; i < nbytes; i++) {
    int k = little ? nbytes - 1 - i : i;
    v = (v << 8) | p[k];
  }
  return v;
}

FrameStatus length_prefixed(const char* p, size_t n, const FrameSpec& spec, const char** msg,
                            size_t* len, size_t* used) noexcept {
  size_t lb = spec.length_bytes;
  if (n < lb) return FrameStatus::More;
  uint64_t field = read_length(reinterpret_cast<const unsigned char*>(p), static_cast<int>(lb),
                               spec.little);
  if (field > (uint64_t{1} << 62)) {  // no real message; avoids overflow below
    *len = static_cast<size_t>(field > SIZE_MAX ? SIZE_MAX : field);
    return FrameStatus::TooLong;
  }
  int64_t body = static_cast<int64_t>(field) + spec.adjust;
  if (body < 0) return FrameStatus::BadLength;
  if (static_cast<uint64_t>(body) > spec.max_message) {
    *len = static_cast<size_t>(body);
    return FrameStatus::TooLong;
  }
  size_t need = lb + static_cast<size_t>(body);
  if (n < need) return FrameStatus::More;
  *msg = p + lb;
  *len = static_cast<size_t>(body);
  *used = need;
  return FrameStatus::Message;
}

}  // namespace

FrameBuffer::~FrameBuffer() { std::free(data); }

bool fb_append(FrameBuffer* b, const char* p, size_t n) noexcept {
  if (n == 0) return true;
  if (b->cap - b->tail < n) {
    size_t held = b->size();
    if (b->head > 0 && b->cap - held >= n && b->head >= held) {
      // Enough room once the read bytes are dropped (and moving is cheap
      // against what was consumed).
      std::memmove(b->data, b->data + b->head, held);
    } else {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap - held < n) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
      }
      char* d = static_cast<char*>(std::malloc(cap));
      if (d == nullptr) return false;
      if (held) std::memcpy(d, b->data + b->head, held);
      std::free(b->data);
      b->data = d;
      b->cap = cap;
    }
    b->head = 0;
    b->tail = held;
  }
  std::memcpy(b->data + b->tail, p, n);
  b->tail += n;
  return true;
}

void fb_consume(FrameBuffer* b, size_t n) noexcept {
  b->head += n;
  b->scanned = b->scanned > n ? b->scanned - n : 0;
  if (b->head == b->tail) {
    b->head = b->tail = 0;
    b->scanned = 0;
    if (b->cap > (256u << 10)) fb_clear(b);  // a big message has gone: give its memory back
  }
}

void fb_clear(FrameBuffer* b) noexcept {
  std::free(b->data);
  b->data = nullptr;
  b->head = b->tail = b->cap = b->scanned = 0;
}

bool fb_find(FrameBuffer* b, const char* delim, size_t dlen, size_t* pos) noexcept {
  if (b->scan_delim != delim || b->scan_len != dlen) {
    b->scan_delim = delim;
    b->scan_len = dlen;
    b->scanned = 0;
  }
  size_t n = b->size();
  if (dlen == 0) {
    *pos = 0;
    return true;
  }
  if (b->scanned > n) b->scanned = 0;
  const char* p = b->begin();
  b->examined += n - b->scanned;
  const char* hit = find(p + b->scanned, n - b->scanned, delim, dlen);
  if (hit) {
    *pos = static_cast<size_t>(hit - p);
    b->scanned = *pos;  // found again at once if asked again
    return true;
  }
  b->scanned = n >= dlen ? n - dlen + 1 : 0;
  return false;
}

FrameStatus frame_scan(const char* p, size_t n, const FrameSpec& spec, const char** msg,
                       size_t* len, size_t* used) noexcept {
  if (spec.kind == FrameSpec::Length) return length_prefixed(p, n, spec, msg, len, used);
  const char* d;
  size_t dlen;
  delimiter_of(spec, &d, &dlen);
  const char* hit = find(p, n, d, dlen);
  if (hit) return delimited(p, static_cast<size_t>(hit - p), dlen, spec, msg, len, used);
  return undelimited(n, dlen, spec, len);
}

FrameStatus fb_next(FrameBuffer* b, const FrameSpec& spec, const char** msg, size_t* len) noexcept {
  size_t used = 0;
  FrameStatus st;
  if (spec.kind == FrameSpec::Length) {
    st = length_prefixed(b->begin(), b->size(), spec, msg, len, &used);
  } else {
    const char* d;
    size_t dlen;
    delimiter_of(spec, &d, &dlen);
    size_t pos = 0;
    if (fb_find(b, d, dlen, &pos))
      st = delimited(b->begin(), pos, dlen, spec, msg, len, &used);
    else
      st = undelimited(b->size(), dlen, spec, len);
  }
  if (st == FrameStatus::Message) {
    // Only head moves: *msg stays valid until the buffer next changes.
    b->head += used;
    b->scanned = 0;
    if (b->head == b->tail) b->head = b->tail = 0;  // data stays; *msg still valid
  }
  return st;
}

namespace {

FeedResult feed_failed(Framer* f, FrameStatus st, size_t len, const FrameSpec& spec) noexcept {
  if (st == FrameStatus::TooLong) {
    std::snprintf(f->reason, sizeof f->reason, "message too long (%zu > %zu)", len,
                  spec.max_message);
    f->code = "MESSAGE_TOO_LONG";
  } else if (st == FrameStatus::BadLength) {
    std::snprintf(f->reason, sizeof f->reason, "bad message length (below 0 after adjust)");
    f->code = "BAD_LENGTH";
  } else {
    std::snprintf(f->reason, sizeof f->reason, "out of memory for a message");
    f->code = "ENOMEM";
  }
  fb_clear(&f->buf);
  return FeedResult::Failed;
}

// Emits the whole messages in f's buffer, each taken out before emit.
FeedResult emit_buffered(Framer* f, const FrameSpec& spec, FrameEmit emit, void* ud) noexcept {
  const char* msg = nullptr;
  size_t len = 0;
  for (;;) {
    FrameStatus st = fb_next(&f->buf, spec, &msg, &len);
    if (st == FrameStatus::More) break;
    if (st != FrameStatus::Message) return feed_failed(f, st, len, spec);
    if (!emit(ud, msg, len)) return FeedResult::Stopped;
  }
  if (f->buf.size() == 0 && f->buf.cap > (256u << 10)) fb_clear(&f->buf);
  return FeedResult::Ok;
}

}  // namespace

FeedResult framer_feed(Framer* f, const FrameSpec& spec, const char* p, size_t n, FrameEmit emit,
                       void* ud) noexcept {
  if (f->buf.size() == 0 && n > 0) {
    // An oversize or bad first message is refused from its header, before
    // any of its body is buffered.
    const char* msg = nullptr;
    size_t len = 0, used = 0;
    FrameStatus st = frame_scan(p, n, spec, &msg, &len, &used);
    if (st != FrameStatus::Message && st != FrameStatus::More) return feed_failed(f, st, len, spec);
  }
  if (!fb_append(&f->buf, p, n)) return feed_failed(f, FrameStatus::More, 0, spec);
  return emit_buffered(f, spec, emit, ud);
}

bool framer_incomplete(Framer* f) noexcept {
  size_t held = f->buf.size();
  if (held == 0) return false;
  std::snprintf(f->reason, sizeof f->reason, "connection ended inside a message (%zu bytes held)",
                held);
  f->code = "INCOMPLETE_MESSAGE";
  fb_clear(&f->buf);
  return true;
}

bool frame_header(const FrameSpec& spec, size_t n, unsigned char* out) noexcept {
  int64_t field = static_cast<int64_t>(n) - spec.adjust;
  if (field < 0) return false;
  int lb = spec.length_bytes;
  if (lb < 8 && static_cast<uint64_t>(field) >> (8 * lb) != 0) return false;
  uint64_t v = static_cast<uint64_t>(field);
  for (int i = 0; i < lb; i++) {
    int k = spec.little ? i : lb - 1 - i;
    out[k] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
  return true;
}

}  // namespace lnet
