// The test host: embeds Lua 5.4 the way an application would, loads the
// built module with require "net", and runs Lua scenario scripts.
#pragma once

#include <lua.hpp>

#include <string>

namespace lnet_test {

// Absolute path of a file in the source tree (LNET_SOURCE) or build tree
// (LNET_BUILD); both are set by meson test.
std::string source_path(const std::string& rel);
std::string build_path(const std::string& rel);

// A fresh state with the standard libraries, package.cpath pointing at the
// built net.so and package.path at tests/lua/. Returns nullptr when the
// allocator refuses (the allocation-failure sweep passes its own).
lua_State* new_state(lua_Alloc alloc = nullptr, void* ud = nullptr);

// For the allocation-failure sweeps: failing_alloc with an AllocBudget as
// ud fails every growing allocation from the fail_from-th on (0: never);
// Lua assumes that shrinking never fails, so only growth counts.
struct AllocBudget {
  long count = 0;      // growing allocations so far
  long fail_from = 0;  // 0: never fail
  bool failed = false;
};
void* failing_alloc(void* ud, void* ptr, size_t osize, size_t nsize);

// Runs a chunk of Lua in L under a traceback handler. Returns "" on success,
// otherwise the error message with its traceback.
std::string run_string(lua_State* L, const std::string& code, const std::string& name);
std::string run_file(lua_State* L, const std::string& path);

// Runs tests/lua/NAME.lua in a fresh state and closes it: "" on success.
std::string run_scenario(const std::string& name);

}  // namespace lnet_test
