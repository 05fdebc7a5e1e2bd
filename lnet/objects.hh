// Registration of the module's object types (one file each).
#pragma once

#include <lua.hpp>

namespace lnet {

// Each adds its constructor or functions to the module table at module_idx;
// ctx_idx holds the context userdata, the upvalue of every function.
void register_timer(lua_State* L, int ctx_idx, int module_idx);
void register_socket(lua_State* L, int ctx_idx, int module_idx);
void register_server(lua_State* L, int ctx_idx, int module_idx);
void register_framing(lua_State* L, int ctx_idx, int module_idx);  // net.frame

// Creates (or reuses) metatable tname with methods as __index and metamethods
// in it, every function with the context as upvalue. Leaves nothing on the stack.
void register_type(lua_State* L, int ctx_idx, const char* tname, const luaL_Reg* methods,
                   const luaL_Reg* metamethods);

// Reads callbacks[names[i]] into uservalue i+1 of the userdata at obj_idx.
// Raises bad argument #arg when the table is missing or a value is neither
// a function nor nil.
void set_callbacks(lua_State* L, int obj_idx, int arg, const char* const* names);

}  // namespace lnet
