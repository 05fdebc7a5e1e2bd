#include "harness.hh"

#include <cstdlib>

namespace lnet_test {

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

int traceback(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) msg = luaL_tolstring(L, 1, nullptr);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

// Sets package.cpath/path; runs protected so an allocation failure is caught.
int setup_paths(lua_State* L) {
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  std::string cpath = build_path("?.so");
  lua_pushlstring(L, cpath.data(), cpath.size());
  lua_setfield(L, -2, "cpath");
  std::string path = source_path("tests/lua/?.lua") + ";" + source_path("examples/?.lua");
  lua_pushlstring(L, path.data(), path.size());
  lua_setfield(L, -2, "path");
  return 0;
}

}  // namespace

std::string source_path(const std::string& rel) { return env_or("LNET_SOURCE", ".") + "/" + rel; }
std::string build_path(const std::string& rel) { return env_or("LNET_BUILD", ".") + "/" + rel; }

lua_State* new_state(lua_Alloc alloc, void* ud) {
  lua_State* L = alloc ? lua_newstate(alloc, ud) : luaL_newstate();
  if (L == nullptr) return nullptr;
  lua_pushcfunction(L, setup_paths);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_close(L);
    return nullptr;
  }
  return L;
}

namespace {

// Calls the chunk that load() pushed (or reports its load error) under the
// traceback handler; "" on success.
std::string call_loaded(lua_State* L, int load_status) {
  // The handler goes below the chunk.
  lua_pushcfunction(L, traceback);
  lua_insert(L, -2);
  int rc = load_status == LUA_OK ? lua_pcall(L, 0, 0, -2) : load_status;
  std::string err;
  if (rc != LUA_OK) {
    const char* m = lua_tostring(L, -1);
    err = m ? m : "(error object is not a string)";
    if (err.empty()) err = "(empty error)";
    lua_pop(L, 1);
  }
  lua_pop(L, 1);  // the handler
  return err;
}

}  // namespace

std::string run_string(lua_State* L, const std::string& code, const std::string& name) {
  return call_loaded(L, luaL_loadbuffer(L, code.data(), code.size(), name.c_str()));
}

std::string run_file(lua_State* L, const std::string& path) {
  return call_loaded(L, luaL_loadfile(L, path.c_str()));
}

std::string run_scenario(const std::string& name) {
  lua_State* L = new_state();
  if (L == nullptr) return "cannot create a Lua state";
  std::string err = run_file(L, source_path("tests/lua/" + name + ".lua"));
  lua_close(L);
  return err;
}

}  // namespace lnet_test
