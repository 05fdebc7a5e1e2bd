-- LuaRocks package for lnet. Build and install from a checkout with
--   luarocks --lua-version 5.4 make lnet-0.1.0-1.rockspec
-- (add --deps-mode=none where luarocks.org cannot be reached and dkjson is
-- installed another way, e.g. Debian's lua-dkjson).
--
-- A rock that installs without building (binary, for this OS and
-- architecture), made from a checkout:
--   luarocks --lua-version 5.4 make --tree /tmp/lnet-rock lnet-0.1.0-1.rockspec
--   luarocks --lua-version 5.4 pack --tree /tmp/lnet-rock lnet 0.1.0-1
-- writes lnet-0.1.0-1.linux-x86_64.rock (luarocks install FILE.rock).
--
-- source.url is a placeholder: `luarocks make` builds the checkout it runs
-- in and never fetches it. Set it to the published repository (e.g.
-- "git+https://HOST/OWNER/lnet.git" with tag = "v0.1.0") before packing a
-- source rock (`luarocks pack lnet-0.1.0-1.rockspec`) or uploading it.
package = "lnet"
version = "0.1.0-1"

source = {
   url = "git+file:///dev/null",
}

description = {
   summary = "Event-driven TCP clients and servers for Lua 5.4, on libevent",
   detailed = [[
lnet is a Lua 5.4 C module (written in C++) loaded with require "net". It
gives Lua non-blocking TCP clients (net.TCPSocket) and servers
(net.TCPServer) driven by callbacks, timers (net.setTimeout,
net.setInterval) and an event loop (net.loop) built on libevent 2.1. The
`lnet` command runs a script with these as globals, plus json.
Building needs a C++17 compiler, meson, ninja, pkg-config and the libevent
development files (Debian/Ubuntu: apt-get install libevent-dev; Fedora:
dnf install libevent-devel; macOS: brew install libevent).
]],
   license = "MIT",
}

dependencies = {
   "lua >= 5.4, < 5.5",
   "dkjson",
}

-- Checked by luarocks before building, so a missing libevent stops with
-- luarocks' own message (set LIBEVENT_DIR if it lives elsewhere).
external_dependencies = {
   LIBEVENT = {
      header = "event2/bufferevent.h",
      library = "event_core",
   },
}

build = {
   type = "command",
   -- meson and ninja build build-rock/lnet/net.so against luarocks' Lua
   -- headers; see tools/luarocks-build.sh.
   build_command = [[LUA_INCDIR="$(LUA_INCDIR)" LUA="$(LUA)" LIBEVENT_INCDIR="$(LIBEVENT_INCDIR)" LIBEVENT_LIBDIR="$(LIBEVENT_LIBDIR)" sh tools/luarocks-build.sh]],
   -- lnet.h, the C header for hosts that drive lnet from their own
   -- event_base (README "Embedding in a libevent host"), goes to the rock's
   -- directory: $(luarocks show --rock-dir lnet)/include/lnet.h. (The
   -- install table knows only lua, lib, bin and conf files.)
   install_command = [[mkdir -p "$(PREFIX)/include" && cp lnet/lnet.h "$(PREFIX)/include/lnet.h"]],
   install = {
      lib = {
         net = "build-rock/lnet/net.so",
      },
      bin = {
         lnet = "bin/lnet",
      },
   },
   -- Shipped in the rock's directory (`luarocks show lnet` prints it):
   -- types/net.lua, the LuaLS definitions, and the examples.
   copy_directories = { "types", "examples" },
}
