#!/bin/sh
# Build step of lnet-0.1.0-1.rockspec (luarocks runs it from the source
# tree): builds build-rock/lnet/net.so with meson in release mode, without
# the tests, against the Lua headers that luarocks passes (LUA_INCDIR).
set -eu

builddir=build-rock
libevent_hint="lnet needs libevent 2.1 development files: apt-get install libevent-dev (Debian/Ubuntu), dnf install libevent-devel (Fedora), brew install libevent (macOS)"

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "lnet needs $1 to build: $2" >&2
    exit 1
  fi
}
need pkg-config "apt-get install pkg-config (Debian/Ubuntu), dnf install pkgconf-pkg-config (Fedora), brew install pkg-config (macOS)"
need meson "apt-get install meson (Debian/Ubuntu), dnf install meson (Fedora), brew install meson (macOS), or pip install meson"
if ! command -v ninja >/dev/null 2>&1 && ! command -v samu >/dev/null 2>&1; then
  echo "lnet needs ninja to build: apt-get install ninja-build (Debian/Ubuntu), dnf install ninja-build (Fedora), brew install ninja (macOS), or pip install ninja" >&2
  exit 1
fi
need c++ "apt-get install g++ (Debian/Ubuntu), dnf install gcc-c++ (Fedora), xcode-select --install (macOS)"

if ! pkg-config --exists libevent_core libevent_extra; then
  echo "$libevent_hint" >&2
  exit 1
fi

# TLS is optional (meson -Dtls=auto): without OpenSSL 3 the module builds
# without it, and says so here and in net.features.tls.
if ! pkg-config --exists 'openssl >= 3.0'; then
  echo "lnet: OpenSSL 3 development files not found: building without TLS (net.features.tls = false)." >&2
  echo "lnet: for TLS: apt-get install libssl-dev (Debian/Ubuntu), dnf install openssl-devel (Fedora), brew install openssl@3 (macOS)" >&2
fi

mkdir -p "$builddir/pkgconfig"

# Compile against the headers of the Lua that luarocks builds for: describe
# them in a pkg-config file of our own (meson finds Lua through pkg-config).
lua_opt=""
if [ -n "${LUA_INCDIR:-}" ] && [ -f "$LUA_INCDIR/lua.h" ]; then
  major=$(sed -n 's/^#define[ \t]*LUA_VERSION_MAJOR[ \t]*"\([0-9]*\)".*/\1/p' "$LUA_INCDIR/lua.h")
  minor=$(sed -n 's/^#define[ \t]*LUA_VERSION_MINOR[ \t]*"\([0-9]*\)".*/\1/p' "$LUA_INCDIR/lua.h")
  release=$(sed -n 's/^#define[ \t]*LUA_VERSION_RELEASE[ \t]*"\([0-9]*\)".*/\1/p' "$LUA_INCDIR/lua.h")
  if [ -z "$major" ]; then
    # Lua 5.4.6 and later spell the version as numbers.
    major=$(sed -n 's/^#define[ \t]*LUA_VERSION_MAJOR_N[ \t]*\([0-9]*\).*/\1/p' "$LUA_INCDIR/lua.h")
    minor=$(sed -n 's/^#define[ \t]*LUA_VERSION_MINOR_N[ \t]*\([0-9]*\).*/\1/p' "$LUA_INCDIR/lua.h")
    release=$(sed -n 's/^#define[ \t]*LUA_VERSION_RELEASE_N[ \t]*\([0-9]*\).*/\1/p' "$LUA_INCDIR/lua.h")
  fi
  if [ "${major:-}.${minor:-}" != "5.4" ]; then
    echo "lnet needs Lua 5.4 headers; $LUA_INCDIR/lua.h is Lua ${major:-?}.${minor:-?}" >&2
    exit 1
  fi
  cat >"$builddir/pkgconfig/lnet-lua.pc" <<PC
Name: lnet-lua
Description: Lua headers given by luarocks (LUA_INCDIR)
Version: $major.$minor.${release:-0}
Cflags: -I$LUA_INCDIR
PC
  PKG_CONFIG_PATH="$PWD/$builddir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export PKG_CONFIG_PATH
  lua_opt="-Dlua_pc=lnet-lua"
fi

# Release build for users: warnings are reported but do not stop the install
# (their compiler may be newer than the ones the project is tested with).
if [ -f "$builddir/meson-private/coredata.dat" ]; then
  set -- --reconfigure
else
  set --
fi
# shellcheck disable=SC2086  # lua_opt is empty or one word
meson setup "$@" "$builddir" --buildtype=release -Dwerror=false -Dtests=disabled $lua_opt
meson compile -C "$builddir"
test -f "$builddir/lnet/net.so"
