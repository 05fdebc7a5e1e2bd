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

// Runs a chunk of Lua in L under a traceback handler. Returns "" on success,
// otherwise the error message with its traceback.
std::string run_string(lua_State* L, const std::string& code, const std::string& name);
std::string run_file(lua_State* L, const std::string& path);

// Runs tests/lua/NAME.lua in a fresh state and closes it: "" on success.
std::string run_scenario(const std::string& name);

}  // namespace lnet_test
