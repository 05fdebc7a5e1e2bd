#include "objects.hh"

#include "context.hh"

#include <cstring>

namespace lnet {

namespace {

// What a function does once the loop is closed, by name.
enum class WhenClosed { Works, Nothing, Raises };

// Functions that end, release or quiet something: on a closed loop there is
// nothing left to end. (stop is also net.stop; clear is timer:clear.)
const char* const kNothingWhenClosed[] = {
    "__gc",  "__close", "close", "stop",         "disconnect",    "shutdown",
    "pause", "resume",  "clear", "clearTimeout", "clearInterval", nullptr};
// Functions that use no libevent state.
const char* const kWorkWhenClosed[] = {"__tostring", "now", nullptr};

bool listed(const char* const* names, const char* name) {
  for (; *names; names++)
    if (!std::strcmp(*names, name)) return true;
  return false;
}

WhenClosed when_closed(const char* name) {
  if (listed(kWorkWhenClosed, name)) return WhenClosed::Works;
  if (listed(kNothingWhenClosed, name)) return WhenClosed::Nothing;
  return WhenClosed::Raises;
}

// Gated functions: upvalue 1 the context, upvalue 2 the real function,
// called in this same frame (so its upvalue 1 is the context too, and
// luaL_argerror names the function as the caller wrote it).
int gate_raise(lua_State* L) {
  Context* ctx = upvalue_context(L);
  if (ctx->closed || ctx->closing)
    return luaL_error(L, "net: the event loop is closed (the Lua state is closing)");
  return lua_tocfunction(L, lua_upvalueindex(2))(L);
}

int gate_nothing(lua_State* L) {
  Context* ctx = upvalue_context(L);
  if (ctx->closed || ctx->closing) return 0;
  return lua_tocfunction(L, lua_upvalueindex(2))(L);
}

// __gc: upvalue 3 is the type's "finalized" metatable. An anchored object is
// reachable from the registry, so only lua_close finalizes one: from then
// on the gates refuse, as for a closed loop. Once its own __gc has run, the
// object takes the finalized metatable, so a finalizer that still holds it
// (one that runs later, for an object made earlier) finds it inert instead
// of opening it again with nothing left to release it.
int gate_gc(lua_State* L) {
  Context* ctx = upvalue_context(L);
  if (!ctx->closed) {
    if (!ctx->closing && lua_type(L, 1) == LUA_TUSERDATA) {
      push_anchored(L, lua_touserdata(L, 1));
      if (!lua_isnil(L, -1)) ctx->closing = true;
      lua_pop(L, 1);
    }
    lua_tocfunction(L, lua_upvalueindex(2))(L);
  }
  if (lua_type(L, 1) == LUA_TUSERDATA) {
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_setmetatable(L, 1);  // no __gc in it: never finalized again
  }
  return 0;
}

// The functions of a finalized object: upvalue 1 its type name.
int finalized_nothing(lua_State*) { return 0; }

int finalized_raise(lua_State* L) {
  return luaL_error(L, "net: this %s was finalized (garbage-collected)",
                    lua_tostring(L, lua_upvalueindex(1)));
}

int finalized_tostring(lua_State* L) {
  lua_pushfstring(L, "%s (finalized)", lua_tostring(L, lua_upvalueindex(1)));
  return 1;
}

// Pushes f as a function with the context as upvalue 1, behind the gate.
// finalized_idx: the type's finalized metatable (for __gc).
void push_function(lua_State* L, int ctx_idx, const luaL_Reg* f, int finalized_idx) {
  WhenClosed w = when_closed(f->name);
  lua_pushvalue(L, ctx_idx);
  if (w == WhenClosed::Works) {
    lua_pushcclosure(L, f->func, 1);
    return;
  }
  lua_pushcfunction(L, f->func);
  if (finalized_idx && !std::strcmp(f->name, "__gc")) {
    lua_pushvalue(L, finalized_idx);
    lua_pushcclosure(L, gate_gc, 3);
    return;
  }
  lua_pushcclosure(L, w == WhenClosed::Nothing ? gate_nothing : gate_raise, 2);
}

void set_functions(lua_State* L, int ctx_idx, int table_idx, const luaL_Reg* functions,
                   int finalized_idx = 0) {
  for (const luaL_Reg* f = functions; f->name; f++) {
    push_function(L, ctx_idx, f, finalized_idx);
    lua_setfield(L, table_idx, f->name);
  }
}

// Sets the finalized stand-in of each function (but __gc) in table_idx.
void set_finalized(lua_State* L, int table_idx, const char* tname, const luaL_Reg* functions) {
  for (const luaL_Reg* f = functions; f->name; f++) {
    if (!std::strcmp(f->name, "__gc")) continue;
    lua_pushstring(L, tname);
    if (!std::strcmp(f->name, "__tostring"))
      lua_pushcclosure(L, finalized_tostring, 1);
    else if (when_closed(f->name) == WhenClosed::Raises)
      lua_pushcclosure(L, finalized_raise, 1);
    else
      lua_pushcclosure(L, finalized_nothing, 1);
    lua_setfield(L, table_idx, f->name);
  }
}

}  // namespace

void register_type(lua_State* L, int ctx_idx, const char* tname, const luaL_Reg* methods,
                   const luaL_Reg* metamethods) {
  ctx_idx = lua_absindex(L, ctx_idx);
  // The metatable a finalized object takes (see gate_gc).
  lua_pushfstring(L, "%s (finalized)", tname);
  luaL_newmetatable(L, lua_tostring(L, -1));
  int finalized = lua_gettop(L);
  set_finalized(L, finalized, tname, metamethods);
  lua_newtable(L);
  set_finalized(L, finalized + 1, tname, methods);
  lua_setfield(L, finalized, "__index");
  lua_pushliteral(L, "locked");
  lua_setfield(L, finalized, "__metatable");

  luaL_newmetatable(L, tname);  // sets __name, the type name in error messages
  int meta = lua_gettop(L);
  set_functions(L, ctx_idx, meta, metamethods, finalized);
  lua_newtable(L);
  set_functions(L, ctx_idx, meta + 1, methods);
  lua_setfield(L, meta, "__index");
  lua_pushliteral(L, "locked");
  lua_setfield(L, meta, "__metatable");
  lua_pop(L, 3);
}

void register_functions(lua_State* L, int ctx_idx, int module_idx, const luaL_Reg* functions) {
  set_functions(L, lua_absindex(L, ctx_idx), lua_absindex(L, module_idx), functions);
}

void* test_udata(lua_State* L, int idx, const char* tname, const void** mt) {
  void* p = lua_touserdata(L, idx);
  if (p == nullptr || !lua_getmetatable(L, idx)) return nullptr;
  const void* have = lua_topointer(L, -1);
  lua_pop(L, 1);
  if (have == *mt && have != nullptr) return p;
  p = luaL_testudata(L, idx, tname);
  if (p) *mt = have;
  return p;
}

void* check_udata(lua_State* L, int idx, const char* tname, const void** mt) {
  void* p = test_udata(L, idx, tname, mt);
  return p ? p : luaL_checkudata(L, idx, tname);  // raises the usual message
}

void set_callbacks(lua_State* L, int obj_idx, int arg, const char* const* names) {
  luaL_checktype(L, arg, LUA_TTABLE);
  obj_idx = lua_absindex(L, obj_idx);
  arg = lua_absindex(L, arg);
  int n = 0;
  while (names[n]) n++;
  // First every key and value is checked, then stored: lua_next, lua_pushnil
  // and lua_setiuservalue neither allocate nor call metamethods.
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      for (int i = 1; i <= n; i++) {
        lua_pushnil(L);
        lua_setiuservalue(L, obj_idx, i);
      }
    }
    lua_pushnil(L);
    while (lua_next(L, arg)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        luaL_argerror(L, arg, lua_pushfstring(L, "callback names must be strings, got %s",
                                              luaL_typename(L, -2)));
      const char* key = lua_tostring(L, -2);
      int i = 0;
      while (i < n && std::strcmp(names[i], key)) i++;
      if (i == n) luaL_argerror(L, arg, lua_pushfstring(L, "unknown callback '%s'", key));
      if (pass == 0) {
        if (lua_type(L, -1) != LUA_TFUNCTION)
          luaL_argerror(L, arg, lua_pushfstring(L, "callback '%s' must be a function, got %s",
                                                key, luaL_typename(L, -1)));
        lua_pop(L, 1);
      } else {
        lua_setiuservalue(L, obj_idx, i + 1);  // pops the value
      }
    }
  }
}

}  // namespace lnet
