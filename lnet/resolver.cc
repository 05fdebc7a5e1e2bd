// Host names through the system resolver: getaddrinfo on worker threads
// that never touch Lua (as libuv and Node do), so /etc/hosts, nsswitch.conf,
// search domains and the options of resolv.conf behave as they do for every
// other program on the machine.
//
// Each context has its own Resolver (nothing is process-wide): a queue of
// lookups, at most kMaxWorkers detached threads that take lookups from it
// and exit when it is empty, and a pipe through which a worker wakes the
// loop when it has answered. The loop reads the answers from an event on
// that pipe: libevent is only ever called from the loop's thread (the base
// has no locks; event_active from another thread would need them).
//
// Nothing waits for a thread: getaddrinfo cannot be interrupted, so a
// cancelled lookup is left to its worker, which hands it back like any
// other, and the loop then frees it unanswered. Ownership moves under the
// mutex: a Lookup belongs to the queue, to one worker, to the answered list
// or to the loop delivering it. The Resolver is counted (the context holds
// one reference, each running worker one), and the last to let go frees it
// and closes the pipe; so a worker that finishes after lua_close frees its
// lookup, and the Resolver if it is the last. (net.so is linked with
// -z nodelete: lua_close unloads C modules, and such a worker still returns
// into this file.)
#include "resolver.hh"

#include "address.hh"
#include "context.hh"

#include <event2/event.h>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>

namespace lnet {

namespace {

// Lookups answered at once per context; more wait in the queue (libuv's
// pool has 4 threads for the whole process).
constexpr int kMaxWorkers = 4;

}  // namespace

enum class LookupState { Queued, Running, Answered, Delivering };

struct Lookup {
  Lookup* prev = nullptr;  // in the queue or the answered list
  Lookup* next = nullptr;
  LookupState state = LookupState::Queued;  // under the mutex
  // The loop's only.
  LookupDone done = nullptr;
  void* owner = nullptr;  // null once cancelled
  Lookup* sprev = nullptr;  // in Resolver::started, from lookup_start until
  Lookup* snext = nullptr;  // delivered or cancelled
  bool in_started = false;
  bool ready = false;       // answered and taken by the loop (Delivering)
  // Written before the lookup is queued; read by the worker.
  addrinfo hints{};
  char host[256] = "";
  char service[8] = "";
  // Written by the worker.
  int err = 0;
  addrinfo* result = nullptr;
};

namespace {

// A doubly linked list of lookups (O(1) removal on cancel).
struct LookupList {
  Lookup* head = nullptr;
  Lookup* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }
  void push(Lookup* lk) noexcept {
    lk->next = nullptr;
    lk->prev = tail;
    (tail ? tail->next : head) = lk;
    tail = lk;
  }
  void remove(Lookup* lk) noexcept {
    (lk->prev ? lk->prev->next : head) = lk->next;
    (lk->next ? lk->next->prev : tail) = lk->prev;
    lk->prev = lk->next = nullptr;
  }
  Lookup* pop() noexcept {
    Lookup* lk = head;
    if (lk) remove(lk);
    return lk;
  }
  // Moves every lookup of other to the end of this list.
  void take(LookupList& other) noexcept {
    if (other.empty()) return;
    (tail ? tail->next : head) = other.head;
    other.head->prev = tail;
    tail = other.tail;
    other.head = other.tail = nullptr;
  }
};

void free_lookup(Lookup* lk) noexcept {
  if (lk->result) freeaddrinfo(lk->result);
  delete lk;
}

}  // namespace

struct Resolver {
  std::mutex mu;
  // Under mu.
  int refs = 1;         // the context's, plus one per running worker
  int workers = 0;      // threads running (each takes from the queue until it is empty)
  bool closed = false;  // the context is gone: workers free what they answer
  LookupList queue;     // waiting for a worker
  LookupList answered;  // answered (or cancelled while running), for the loop
  // A byte is written when answered becomes non-empty.
  int wake_rd = -1;
  int wake_wr = -1;
  // The loop's only.
  event* wake_ev = nullptr;  // pending while live > 0, so that it keeps the loop running
  int live = 0;              // lookups started, neither delivered nor cancelled
  // Every live lookup in the order started: answers for the same name are
  // delivered in that order (listen("localhost") then connect("localhost")
  // binds before it connects, whichever worker finishes first).
  Lookup* started_head = nullptr;
  Lookup* started_tail = nullptr;
};

namespace {

void destroy(Resolver* r) noexcept {
  if (r->wake_rd >= 0) ::close(r->wake_rd);
  if (r->wake_wr >= 0) ::close(r->wake_wr);
  delete r;
}

// Gives up one reference; lock holds r->mu and is released. The last
// reference frees the resolver.
void release(Resolver* r, std::unique_lock<std::mutex>& lock) noexcept {
  bool last = --r->refs == 0;
  lock.unlock();
  if (last) destroy(r);
}

void* work(void* arg) {
  Resolver* r = static_cast<Resolver*>(arg);
  std::unique_lock<std::mutex> lock(r->mu);
  while (!r->closed && !r->queue.empty()) {
    Lookup* lk = r->queue.pop();
    lk->state = LookupState::Running;
    lock.unlock();
    addrinfo* ai = nullptr;
    int err = getaddrinfo(lk->host, lk->service, &lk->hints, &ai);
    lock.lock();
    lk->err = err;
    lk->result = err == 0 ? ai : nullptr;
    if (r->closed) {
      free_lookup(lk);
      break;
    }
    lk->state = LookupState::Answered;
    bool wake = r->answered.empty();
    r->answered.push(lk);
    if (wake) {
      // The pipe holds at most one unread byte per batch: never full.
      char byte = 1;
      while (::write(r->wake_wr, &byte, 1) < 0 && errno == EINTR) {
      }
    }
  }
  r->workers--;
  release(r, lock);
  return nullptr;
}

// A detached worker with every signal blocked (signals are for the host's
// own threads).
bool start_worker(Resolver* r) noexcept {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, work, r);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  return rc == 0;
}

// One lookup fewer to wait for: the loop no longer waits on the pipe when
// none is left.
void unlive(Resolver* r) noexcept {
  if (--r->live == 0) event_del(r->wake_ev);
}

void started_push(Resolver* r, Lookup* lk) noexcept {
  lk->snext = nullptr;
  lk->sprev = r->started_tail;
  (r->started_tail ? r->started_tail->snext : r->started_head) = lk;
  r->started_tail = lk;
  lk->in_started = true;
}

void started_remove(Resolver* r, Lookup* lk) noexcept {
  if (!lk->in_started) return;
  (lk->sprev ? lk->sprev->snext : r->started_head) = lk->snext;
  (lk->snext ? lk->snext->sprev : r->started_tail) = lk->sprev;
  lk->sprev = lk->snext = nullptr;
  lk->in_started = false;
}

// An answer waits while a lookup of the same name started before it is
// still unanswered.
bool held(const Lookup* lk) noexcept {
  for (const Lookup* e = lk->sprev; e; e = e->sprev)
    if (!e->ready && strcasecmp(e->host, lk->host) == 0) return true;
  return false;
}

void on_wake(evutil_socket_t fd, short, void* arg) {
  Resolver* r = static_cast<Context*>(arg)->resolver;
  // Drain first: a byte written after this belongs to answers not taken below.
  char buf[64];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
  LookupList batch;
  {
    std::lock_guard<std::mutex> lock(r->mu);
    batch.take(r->answered);
    for (Lookup* lk = batch.head; lk; lk = lk->next) lk->state = LookupState::Delivering;
  }
  for (Lookup* lk = batch.head; lk; lk = lk->next) lk->ready = true;
  batch.head = batch.tail = nullptr;  // the lookups stay in started until delivered
  // What can be delivered now, in the order started.
  for (Lookup* lk = r->started_head; lk;) {
    Lookup* next = lk->snext;
    if (lk->ready && !held(lk)) {
      started_remove(r, lk);
      batch.push(lk);
    }
    lk = next;
  }
  // done() never runs Lua (objects defer their callbacks), but it may start
  // or cancel lookups: a cancelled one of this batch has its owner cleared.
  while (Lookup* lk = batch.pop()) {
    if (lk->owner == nullptr) {
      free_lookup(lk);
      continue;
    }
    LookupDone done = lk->done;
    void* owner = lk->owner;
    int err = lk->err;
    addrinfo* ai = lk->result;
    lk->result = nullptr;
    free_lookup(lk);
    unlive(r);
    done(owner, err, ai);
  }
}

// The context's resolver, made on first use; null when it cannot be made
// (or the context is closed).
Resolver* resolver_for(Context* ctx) noexcept {
  if (ctx->resolver) return ctx->resolver;
  if (ctx->base == nullptr) return nullptr;
  Resolver* r = new (std::nothrow) Resolver;
  if (r == nullptr) return nullptr;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    destroy(r);
    return nullptr;
  }
  r->wake_rd = fds[0];
  r->wake_wr = fds[1];
  r->wake_ev = event_new(ctx->base, r->wake_rd, EV_READ | EV_PERSIST, on_wake, ctx);
  if (r->wake_ev == nullptr) {
    destroy(r);
    return nullptr;
  }
  ctx->resolver = r;
  return r;
}

}  // namespace

Lookup* lookup_start(Context* ctx, const char* host, int port, bool passive, LookupDone done,
                     void* owner) noexcept {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  char service[8];
  std::snprintf(service, sizeof service, "%d", port);

  // A numeric address needs no resolver. "[::1]" is the IPv6 address in
  // brackets, as in URLs; brackets never hold a name.
  size_t len = std::strlen(host);
  bool bracketed = len >= 2 && host[0] == '[' && host[len - 1] == ']';
  char literal[256];
  const char* numeric = host;
  if (bracketed) {
    len = len - 2 < sizeof literal ? len - 2 : sizeof literal - 1;
    std::memcpy(literal, host + 1, len);
    literal[len] = '\0';
    numeric = literal;
  }
  addrinfo numeric_hints = hints;
  numeric_hints.ai_flags |= AI_NUMERICHOST;
  if (bracketed) numeric_hints.ai_family = AF_INET6;
  addrinfo* ai = nullptr;
  int err = getaddrinfo(numeric, service, &numeric_hints, &ai);
  if (err == 0 || bracketed) {
    done(owner, err == 0 ? 0 : EAI_NONAME, err == 0 ? ai : nullptr);
    return nullptr;
  }

  Resolver* r = resolver_for(ctx);
  if (r == nullptr) {
    done(owner, EAI_SYSTEM, nullptr);
    return nullptr;
  }
  Lookup* lk = new (std::nothrow) Lookup;
  if (lk == nullptr) {
    done(owner, EAI_MEMORY, nullptr);
    return nullptr;
  }
  // Pending from the first lookup on, the wake event keeps the loop running.
  if (r->live == 0 && event_add(r->wake_ev, nullptr) != 0) {
    delete lk;
    done(owner, EAI_SYSTEM, nullptr);
    return nullptr;
  }
  r->live++;
  started_push(r, lk);
  lk->done = done;
  lk->owner = owner;
  lk->hints = hints;
  std::snprintf(lk->host, sizeof lk->host, "%s", host);
  std::memcpy(lk->service, service, sizeof service);

  std::unique_lock<std::mutex> lock(r->mu);
  r->queue.push(lk);
  if (r->workers >= kMaxWorkers) return lk;  // a running worker takes it
  r->workers++;
  r->refs++;
  lock.unlock();
  if (start_worker(r)) return lk;
  lock.lock();
  r->workers--;
  r->refs--;  // the context's reference remains
  // A worker only ends once the queue is empty: with none left, nobody
  // would take this lookup.
  bool stranded = r->workers == 0;
  if (stranded) r->queue.remove(lk);
  lock.unlock();
  if (!stranded) return lk;
  started_remove(r, lk);
  delete lk;
  unlive(r);
  done(owner, EAI_AGAIN, nullptr);
  return nullptr;
}

void lookup_cancel(Context* ctx, Lookup* lk) noexcept {
  Resolver* r = ctx->resolver;
  if (lk == nullptr || r == nullptr) return;  // closed: resolver_close dropped it
  bool ours = false;
  {
    std::lock_guard<std::mutex> lock(r->mu);
    switch (lk->state) {
      case LookupState::Queued:
        r->queue.remove(lk);
        ours = true;
        break;
      case LookupState::Answered:
        r->answered.remove(lk);
        ours = true;
        break;
      case LookupState::Running:     // the worker hands it back; on_wake frees it
      case LookupState::Delivering:  // on_wake frees it
        break;
    }
  }
  lk->owner = nullptr;
  bool waiting = lk->in_started;  // answers of the same name may wait for this one
  // Answered and held back in started: the loop's to free. (One in the
  // batch on_wake is delivering has left started; on_wake frees it.)
  if (lk->ready && lk->in_started) ours = true;
  started_remove(r, lk);
  unlive(r);
  if (ours) free_lookup(lk);
  if (waiting && r->live > 0) event_active(r->wake_ev, EV_READ, 0);
}

void resolver_close(Context* ctx) noexcept {
  Resolver* r = ctx->resolver;
  if (r == nullptr) return;
  ctx->resolver = nullptr;
  event_free(r->wake_ev);
  r->wake_ev = nullptr;
  // Answered lookups held back for an earlier one of the same name are the
  // loop's: freed here (the others are in the lists below or a worker's).
  for (Lookup* lk = r->started_head; lk;) {
    Lookup* next = lk->snext;
    if (lk->ready) free_lookup(lk);
    lk = next;
  }
  r->started_head = r->started_tail = nullptr;
  LookupList dropped;
  std::unique_lock<std::mutex> lock(r->mu);
  r->closed = true;
  dropped.take(r->queue);
  dropped.take(r->answered);
  release(r, lock);
  while (Lookup* lk = dropped.pop()) free_lookup(lk);
}

}  // namespace lnet
