// Message framing: an incremental scanner over a byte buffer that cuts
// lines, delimited messages or length-prefixed messages. It remembers how
// far it has searched, so a message split over many reads is scanned once
// (linear time). Plain C++, no Lua and no libevent: the connection's data
// path, the coroutine layer's buffer (net.co) and the tests use it alike.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lnet {

constexpr size_t kMaxDelimiter = 64;

struct FrameSpec {
  enum Kind : uint8_t { None, Line, Delimiter, Length };
  Kind kind = None;
  uint8_t length_bytes = 0;  // 1, 2, 4 or 8
  bool little = false;       // byte order of the length field
  uint8_t delim_len = 0;
  char delim[kMaxDelimiter] = {};
  int64_t adjust = 0;            // added to the length field: body size = field + adjust
  size_t max_message = 1u << 20;  // a longer message is an error
};

enum class FrameStatus : uint8_t {
  Message,   // *msg/*len set; consumed from the buffer
  More,      // no complete message yet
  TooLong,   // the next message exceeds max_message (size in *len)
  BadLength, // a length field + adjust below 0
};

// A growable byte buffer with a read position and the scanner's memory.
struct FrameBuffer {
  char* data = nullptr;
  size_t head = 0;     // first unread byte
  size_t tail = 0;     // end of the bytes held
  size_t cap = 0;
  size_t scanned = 0;  // bytes from head known to hold no delimiter start
  const char* scan_delim = nullptr;  // the delimiter scanned for (identity)
  size_t scan_len = 0;
  uint64_t examined = 0;  // bytes searched in all (the tests check it stays linear)

  FrameBuffer() = default;
  FrameBuffer(const FrameBuffer&) = delete;
  FrameBuffer& operator=(const FrameBuffer&) = delete;
  ~FrameBuffer();

  size_t size() const noexcept { return tail - head; }
  const char* begin() const noexcept { return data + head; }
};

// Appends n bytes; false when out of memory (the buffer is unchanged).
bool fb_append(FrameBuffer* b, const char* p, size_t n) noexcept;
// Drops n bytes from the front (n <= size()).
void fb_consume(FrameBuffer* b, size_t n) noexcept;
// Empties the buffer and frees its memory.
void fb_clear(FrameBuffer* b) noexcept;

// Searches for delim (dlen bytes) from where the last search for the same
// delimiter stopped. Returns true and its offset from head in *pos, or
// false (the search resumes later at size() - dlen + 1).
bool fb_find(FrameBuffer* b, const char* delim, size_t dlen, size_t* pos) noexcept;

// The next message according to spec. For Message, *msg points into the
// buffer and stays valid until the next call that changes the buffer; a
// line loses its "\n" or "\r\n", a delimited message its delimiter, a
// length-prefixed one its length field. For TooLong, *len is the size
// known so far (the announced size for a length prefix).
FrameStatus fb_next(FrameBuffer* b, const FrameSpec& spec, const char** msg, size_t* len) noexcept;

// Scans an external chunk (nothing buffered yet) without copying: the same
// as fb_next on a buffer holding exactly p[0..n), where *used tells how many
// bytes the message took. For More, the caller buffers the rest.
FrameStatus frame_scan(const char* p, size_t n, const FrameSpec& spec, const char** msg,
                       size_t* len, size_t* used) noexcept;

// A connection's framing state: what is buffered of the next message, and
// why the stream was ended.
struct Framer {
  FrameBuffer buf;
  char reason[80] = "";
  const char* code = nullptr;  // "MESSAGE_TOO_LONG", "BAD_LENGTH", "ENOMEM"
};

// Called with each whole message; returns false to stop (the connection
// was closed or disconnected by the callback, or the callback raised): the
// bytes after that message stay buffered.
using FrameEmit = bool (*)(void* ud, const char* msg, size_t len);

enum class FeedResult : uint8_t { Ok, Stopped, Failed };

// Feeds bytes read from the socket: complete messages go to emit, the rest
// stays buffered. Failed: the stream must end; f->reason and f->code say
// why ("message too long (N > max)"; an oversize or bad first message is
// refused from its header, before any of its body is buffered). emit may
// not return (a Lua callback called without a protected call of its own:
// its error longjmps out): all of p goes into the buffer first and each
// message leaves the buffer before it is emitted, so whatever emit does,
// the messages after it stay buffered. Nothing here has a destructor to
// skip.
FeedResult framer_feed(Framer* f, const FrameSpec& spec, const char* p, size_t n, FrameEmit emit,
                       void* ud) noexcept;

// The stream ended: true (with f->reason and f->code "INCOMPLETE_MESSAGE")
// when part of a message is held, which can never complete.
bool framer_incomplete(Framer* f) noexcept;

// Writes the length field for a body of n bytes into out (spec.length_bytes
// bytes); false when n - adjust does not fit the field.
bool frame_header(const FrameSpec& spec, size_t n, unsigned char* out) noexcept;

}  // namespace lnet
