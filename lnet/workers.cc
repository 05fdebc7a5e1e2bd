// Worker processes (lnet --workers N): net.worker() in each worker, the
// supervisor the runner's parent process runs, and the graceful-stop signal
// hook of a worker. Signals are process-wide by nature: only the runner
// calls the functions of net._runner (supervise, on_terminate), in
// processes it owns.
#include "context.hh"
#include "objects.hh"

#include <event2/event.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <new>

namespace lnet {

namespace {

// ------------------------------------------------------------ net.worker()

// LNET_WORKER="i/N", set by the supervisor for each worker.
int net_worker(lua_State* L) {
  const char* env = std::getenv("LNET_WORKER");
  long index = 1, count = 1;
  if (env != nullptr) {
    char* end = nullptr;
    long i = std::strtol(env, &end, 10);
    if (end != env && *end == '/') {
      long n = std::strtol(end + 1, &end, 10);
      if (*end == '\0' && n >= 1 && i >= 1 && i <= n) index = i, count = n;
    }
  }
  lua_pushinteger(L, index);
  lua_pushinteger(L, count);
  return 2;
}

// ---------------------------------------------------- the supervisor process

constexpr int kMaxWorkers = 1024;
constexpr int64_t kBackoffFirstMs = 100;
constexpr int64_t kBackoffMaxMs = 5000;
constexpr int64_t kStableMs = 10000;  // a worker that lived this long resets its back-off
constexpr int64_t kKillAfterGraceMs = 5000;

struct Worker {
  pid_t pid = -1;
  int64_t started = 0;
  int64_t restart_at = -1;  // ms; -1: not waiting for a restart
  int64_t backoff = kBackoffFirstMs;
  bool done = false;        // ended with status 0 on its own: not restarted
};

struct Supervisor {
  char** argv = nullptr;
  int count = 0;
  int64_t grace_ms = 30000;
  int max_restarts = 10;
  Worker* workers = nullptr;
  int64_t* restarts = nullptr;  // ring of the last max_restarts restart times
  int nrestarts = 0;
  bool stopping = false;
  int64_t kill_at = -1;
  int status = 0;
  sigset_t old_mask;
};

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "lnet: %s\n", line);
  std::fflush(stderr);
}

bool spawn(Supervisor* s, int i) noexcept {
  Worker* w = &s->workers[i];
  char env[32];
  std::snprintf(env, sizeof env, "%d/%d", i + 1, s->count);
  pid_t pid = fork();
  if (pid < 0) {
    say("cannot start worker %d: %s", i + 1, std::strerror(errno));
    return false;
  }
  if (pid == 0) {
    setenv("LNET_WORKER", env, 1);
    sigprocmask(SIG_SETMASK, &s->old_mask, nullptr);
    execvp(s->argv[0], s->argv);
    std::fprintf(stderr, "lnet: cannot run %s: %s\n", s->argv[0], std::strerror(errno));
    _exit(127);
  }
  w->pid = pid;
  w->started = now_ms();
  w->restart_at = -1;
  say("started worker %d (pid %d)", i + 1, static_cast<int>(pid));
  return true;
}

void signal_all(Supervisor* s, int sig) noexcept {
  for (int i = 0; i < s->count; i++)
    if (s->workers[i].pid > 0) kill(s->workers[i].pid, sig);
}

void begin_stop(Supervisor* s, int sig) noexcept {
  if (!s->stopping) {
    s->stopping = true;
    s->kill_at = now_ms() + s->grace_ms + kKillAfterGraceMs;
  }
  for (int i = 0; i < s->count; i++) s->workers[i].restart_at = -1;
  signal_all(s, sig);
}

// A restart within the limit: true; false when the last max_restarts
// restarts all happened within the last minute.
bool restart_allowed(Supervisor* s, int64_t now) noexcept {
  if (s->max_restarts <= 0) return false;
  int64_t oldest = s->restarts[s->nrestarts % s->max_restarts];
  if (s->nrestarts >= s->max_restarts && now - oldest < 60000) return false;
  s->restarts[s->nrestarts % s->max_restarts] = now;
  s->nrestarts++;
  return true;
}

void reap(Supervisor* s) noexcept {
  for (;;) {
    int wstatus = 0;
    pid_t pid = waitpid(-1, &wstatus, WNOHANG);
    if (pid <= 0) return;
    int i = 0;
    while (i < s->count && s->workers[i].pid != pid) i++;
    if (i == s->count) continue;  // not one of ours
    Worker* w = &s->workers[i];
    w->pid = -1;
    bool clean = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    char how[64];
    if (WIFEXITED(wstatus))
      std::snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(wstatus));
    else
      std::snprintf(how, sizeof how, "was killed by signal %d (%s)", WTERMSIG(wstatus),
                    strsignal(WTERMSIG(wstatus)));
    if (s->stopping) {
      if (!clean) {
        say("worker %d (pid %d) %s while stopping", i + 1, static_cast<int>(pid), how);
        s->status = 1;
      }
      continue;
    }
    if (clean) {  // its script had nothing more to do
      w->done = true;
      say("worker %d (pid %d) finished", i + 1, static_cast<int>(pid));
      continue;
    }
    int64_t now = now_ms();
    if (now - w->started >= kStableMs) w->backoff = kBackoffFirstMs;
    if (!restart_allowed(s, now)) {
      say("worker %d (pid %d) %s; workers keep dying (%d restarts within a minute): stopping",
          i + 1, static_cast<int>(pid), how, s->max_restarts);
      s->status = 1;
      begin_stop(s, SIGTERM);
      continue;
    }
    say("worker %d (pid %d) %s; restarting it in %lld ms", i + 1, static_cast<int>(pid), how,
        static_cast<long long>(w->backoff));
    w->restart_at = now + w->backoff;
    w->backoff = w->backoff * 2 > kBackoffMaxMs ? kBackoffMaxMs : w->backoff * 2;
  }
}

bool any_alive(const Supervisor* s) noexcept {
  for (int i = 0; i < s->count; i++)
    if (s->workers[i].pid > 0 || (!s->stopping && s->workers[i].restart_at >= 0)) return true;
  return false;
}

// The supervisor's loop: no Lua, no libevent; signals are taken with
// sigtimedwait, so nothing runs in a signal handler.
int supervise(Supervisor* s) noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, &s->old_mask);
  for (int i = 0; i < s->count; i++) {
    if (!spawn(s, i)) {
      s->status = 1;
      begin_stop(s, SIGTERM);
      break;
    }
  }
  while (any_alive(s)) {
    int64_t now = now_ms();
    int64_t wake = now + 1000;
    for (int i = 0; i < s->count; i++) {
      Worker* w = &s->workers[i];
      if (w->restart_at < 0 || s->stopping) continue;
      if (w->restart_at <= now) {
        if (!spawn(s, i)) w->restart_at = now + w->backoff;
      }
      if (w->restart_at >= 0 && w->restart_at < wake) wake = w->restart_at;
    }
    if (s->stopping && s->kill_at >= 0) {
      if (now >= s->kill_at) {
        say("workers still running %lld ms after the grace period: killing them",
            static_cast<long long>(kKillAfterGraceMs));
        signal_all(s, SIGKILL);
        s->status = 1;
        s->kill_at = -1;
      } else if (s->kill_at < wake) {
        wake = s->kill_at;
      }
    }
    int64_t wait_ms = wake > now ? wake - now : 0;
    timespec ts{static_cast<time_t>(wait_ms / 1000), static_cast<long>(wait_ms % 1000) * 1000000};
    siginfo_t info;
    int sig = sigtimedwait(&set, &info, &ts);
    if (sig == SIGCHLD) {
      reap(s);
    } else if (sig > 0 && sig != SIGCHLD) {  // SIGTERM, SIGINT, SIGHUP, SIGQUIT
      if (!s->stopping) say("stopping the workers (%s)", strsignal(sig));
      begin_stop(s, sig == SIGINT ? SIGINT : SIGTERM);
    }
    reap(s);  // a SIGCHLD merged with another signal
  }
  sigprocmask(SIG_SETMASK, &s->old_mask, nullptr);
  return s->status;
}

// net._runner.supervise(argv, workers, grace_ms, max_restarts) -> exit status.
// Starts the workers (argv with LNET_WORKER="i/N" in the environment),
// restarts those that die, forwards SIGTERM and SIGINT, and returns once
// all have ended.
int net_supervise(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer count = luaL_checkinteger(L, 2);
  lua_Integer grace = luaL_checkinteger(L, 3);
  lua_Integer max_restarts = luaL_checkinteger(L, 4);
  luaL_argcheck(L, count >= 1 && count <= kMaxWorkers, 2, "workers must be 1..1024");
  luaL_argcheck(L, grace >= 0 && grace <= (int64_t{1} << 40), 3, "grace out of range");
  luaL_argcheck(L, max_restarts >= 0 && max_restarts <= 100000, 4, "max_restarts out of range");
  lua_Integer argc = luaL_len(L, 1);
  luaL_argcheck(L, argc >= 1 && argc < 4096, 1, "argv is empty");
  for (lua_Integer i = 1; i <= argc; i++) {
    if (lua_geti(L, 1, i) != LUA_TSTRING) luaL_argerror(L, 1, "argv must hold strings");
    lua_pop(L, 1);
  }
  // Everything checked; the strings stay alive in the table during the call.
  Supervisor s;
  s.count = static_cast<int>(count);
  s.grace_ms = grace;
  s.max_restarts = static_cast<int>(max_restarts);
  s.argv = static_cast<char**>(std::calloc(static_cast<size_t>(argc) + 1, sizeof(char*)));
  s.workers = static_cast<Worker*>(std::calloc(static_cast<size_t>(count), sizeof(Worker)));
  s.restarts = static_cast<int64_t*>(
      std::calloc(static_cast<size_t>(max_restarts > 0 ? max_restarts : 1), sizeof(int64_t)));
  int status = 1;
  if (s.argv && s.workers && s.restarts) {
    for (lua_Integer i = 1; i <= argc; i++) {
      lua_geti(L, 1, i);
      s.argv[i - 1] = const_cast<char*>(lua_tostring(L, -1));
      lua_pop(L, 1);  // the table keeps the string alive
    }
    for (int i = 0; i < s.count; i++) s.workers[i] = Worker();
    status = supervise(&s);
  } else {
    say("out of memory");
  }
  std::free(s.argv);
  std::free(s.workers);
  std::free(s.restarts);
  lua_pushinteger(L, status);
  return 1;
}

// ------------------------------------------------- a worker's graceful stop

// The hook: SIGTERM and SIGINT call fn(signal_name) from the loop. Kept in
// a userdata (the registry holds it) whose __gc frees the two events.
const char kHookName[] = "net.TerminateHook";
int kHookKey;

struct Hook {
  Context* ctx = nullptr;
  event* ev[2] = {nullptr, nullptr};
  int sig[2] = {SIGTERM, SIGINT};
  bool stopping = false;  // a signal came: the worker is on its way out
};

struct HookCall {
  Hook* hook;
  int sig;
};

int hook_body(lua_State* L) {
  auto* hc = static_cast<HookCall*>(lua_touserdata(L, 1));
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kHookKey);
  if (lua_type(L, -1) != LUA_TUSERDATA || lua_getiuservalue(L, -1, 1) != LUA_TFUNCTION) return 0;
  lua_pushstring(L, hc->sig == SIGTERM ? "SIGTERM" : "SIGINT");
  lua_call(L, 1, 0);
  return 0;
}

void on_signal(evutil_socket_t sig, short, void* arg) {
  Hook* hook = static_cast<Hook*>(arg);
  hook->stopping = true;
  if (hook->ctx->L == nullptr) return;  // not inside net.loop(): nothing to call
  HookCall hc{hook, static_cast<int>(sig)};
  dispatch(hook->ctx, hook_body, &hc);
}

int hook_gc(lua_State* L) {
  Hook* hook = static_cast<Hook*>(luaL_checkudata(L, 1, kHookName));
  for (event*& ev : hook->ev) {
    if (ev) event_free(ev);  // restores the default disposition
    ev = nullptr;
  }
  // A worker on its way out may get the same signal again (the supervisor
  // forwards it, and `kill -TERM -PGID` or systemd's control-group kill
  // reach the worker directly): it must not die of it while it closes. The
  // supervisor's SIGKILL after the grace period stays the hard stop. This
  // runs only in the runner's worker processes (net._runner).
  if (hook->stopping) {
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGINT, SIG_IGN);
  }
  return 0;
}

// net._runner.on_terminate(fn): fn(signal_name) runs when SIGTERM or SIGINT arrive
// while the loop runs (the runner's worker mode). Replaces an earlier hook.
int net_on_terminate(lua_State* L) {
  Context* ctx = upvalue_context(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  Hook* hook = new (lua_newuserdatauv(L, sizeof(Hook), 1)) Hook();
  if (luaL_newmetatable(L, kHookName)) {
    lua_pushcfunction(L, hook_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  hook->ctx = ctx;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  // The previous hook (if any) is collected: its __gc frees its events
  // first, so event_add below is the only one for these signals.
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kHookKey);
  if (lua_type(L, -1) == LUA_TUSERDATA) {
    lua_pushcfunction(L, hook_gc);
    lua_insert(L, -2);
    lua_call(L, 1, 0);
  } else {
    lua_pop(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kHookKey);
  for (int i = 0; i < 2; i++) {
    hook->ev[i] = evsignal_new(ctx->base, hook->sig[i], on_signal, hook);
    if (hook->ev[i] == nullptr || event_add(hook->ev[i], nullptr) != 0)
      return luaL_error(L, "on_terminate: cannot watch signal %d", hook->sig[i]);
  }
  return 0;
}

// net._runner: what only the lnet runner calls.
const luaL_Reg kRunner[] = {{"supervise", net_supervise},
                            {"on_terminate", net_on_terminate},
                            {nullptr, nullptr}};

}  // namespace

void register_workers(lua_State* L, int ctx_idx, int module_idx) {
  lua_pushvalue(L, ctx_idx);
  lua_pushcclosure(L, net_worker, 1);
  lua_setfield(L, module_idx, "worker");
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, ctx_idx);
  luaL_setfuncs(L, kRunner, 1);
  lua_setfield(L, module_idx, "_runner");
}

}  // namespace lnet
