// What every object type shares: registration of its functions behind the
// closed-loop gate, and the callbacks table (objects.cc).
#pragma once

#include <lua.hpp>

namespace lnet {

// Each adds its constructor or functions to the module table at module_idx;
// ctx_idx holds the context userdata, the upvalue of every function.
void register_timer(lua_State* L, int ctx_idx, int module_idx);
void register_socket(lua_State* L, int ctx_idx, int module_idx);
void register_server(lua_State* L, int ctx_idx, int module_idx);
void register_udp(lua_State* L, int ctx_idx, int module_idx);
void register_workers(lua_State* L, int ctx_idx, int module_idx);  // workers.cc
void register_framing(lua_State* L, int ctx_idx, int module_idx);  // net.frame

// The gate. Once lua_close has begun (it finalized an anchored object:
// Context::closing) or has finalized the context (Context::closed: an
// object the program made before require "net" is finalized after it), a
// function that ends or quiets something (close, __close, stop, disconnect,
// shutdown, pause, resume, clear...) does nothing and returns nothing;
// __tostring and now work as always; every other one raises "net: the event
// loop is closed". After its own __gc, an object takes its type's
// "finalized" metatable (__name "net.TCPSocket (finalized)"): the same
// closing calls do nothing, the others raise "net: this net.TCPSocket was
// finalized", so a later finalizer cannot open it again. Registering
// through these two functions puts every function behind the gate, with
// the context as upvalue 1.

// Creates (or reuses) metatable tname with methods as __index and
// metamethods in it. Leaves nothing on the stack.
void register_type(lua_State* L, int ctx_idx, const char* tname, const luaL_Reg* methods,
                   const luaL_Reg* metamethods);
// Sets module[name] = function for each entry.
void register_functions(lua_State* L, int ctx_idx, int module_idx, const luaL_Reg* functions);

// luaL_testudata and luaL_checkudata with a fast path: *mt caches the
// address of tname's metatable (a field of the context: one per state), so
// a method's check is one pointer comparison instead of a registry lookup
// by name.
void* test_udata(lua_State* L, int idx, const char* tname, const void** mt);
void* check_udata(lua_State* L, int idx, const char* tname, const void** mt);

// Reads the callbacks table at arg into uservalues 1..n of the userdata at
// obj_idx: names[i] goes to uservalue i+1 (nil when absent). Raises bad
// argument #arg when it is not a table, has a key that is not one of names,
// or a value that is not a function; then nothing is stored. The table is
// read raw (no __index or __pairs) and nothing is allocated unless it
// raises, so no Lua code runs inside: call it after checking the object's
// state, and nothing can change that state meanwhile.
void set_callbacks(lua_State* L, int obj_idx, int arg, const char* const* names);

}  // namespace lnet
