# shellcheck shell=bash
# Sourced by tools/demo, tools/check and .ci/run: makes sure that what
# building and testing lnet need is installed (Debian 12 / Ubuntu packages).
#
#   . tools/deps.sh
#
# Installs only what is missing (apt-get update once, then
# apt-get install -y --no-install-recommends), and only as root. As another
# user with something missing it prints the exact command and exits 1.
# LNET_SKIP_DEPS=1 skips the whole check (for machines without dpkg that
# provide the same tools another way).

lnet_deps_packages=(
  g++ meson ninja-build pkg-config
  liblua5.4-dev lua5.4
  libevent-dev libboost-test-dev
  lua-cjson lua-dkjson luarocks
  netcat-openbsd curl valgrind coreutils
  haproxy nginx-light libnginx-mod-stream
  redis-server redis-tools lua-nginx-redis lua-copas lua-socket lua5.1
  libssl-dev openssl python3 socat iproute2
)

# A command each package provides, to check with command -v where there is
# no dpkg; packages without a command (libraries) map to "".
lnet_deps_command() {
  case "$1" in
    g++) echo g++ ;;
    meson) echo meson ;;
    ninja-build) echo ninja ;;
    pkg-config) echo pkg-config ;;
    lua5.4) echo lua5.4 ;;
    luarocks) echo luarocks ;;
    netcat-openbsd) echo nc ;;
    curl) echo curl ;;
    valgrind) echo valgrind ;;
    coreutils) echo timeout ;;
    socat) echo socat ;;
    iproute2) echo ip ;;
    haproxy) echo haproxy ;;
    nginx-light) echo nginx ;;
    redis-server) echo redis-server ;;
    redis-tools) echo redis-benchmark ;;
    lua5.1) echo lua5.1 ;;
    openssl) echo openssl ;;
    python3) echo python3 ;;
    *) echo "" ;;
  esac
}

lnet_deps_missing() {
  local pkg cmd status
  for pkg in "${lnet_deps_packages[@]}"; do
    if command -v dpkg-query >/dev/null 2>&1; then
      status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
      case "$status" in
        ii*) ;;
        *) echo "$pkg" ;;
      esac
    else
      cmd=$(lnet_deps_command "$pkg")
      if [ -n "$cmd" ] && ! command -v "$cmd" >/dev/null 2>&1; then
        echo "$pkg"
      fi
    fi
  done
}

lnet_deps() {
  if [ "${LNET_SKIP_DEPS:-}" = 1 ]; then
    return 0
  fi
  local missing
  missing=$(lnet_deps_missing | tr '\n' ' ')
  missing=${missing% }
  if [ -z "$missing" ]; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "lnet: missing build or test tools: $missing" >&2
    echo "lnet: this script installs them only with apt-get (Debian/Ubuntu); install the equivalents, then rerun with LNET_SKIP_DEPS=1" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "lnet: missing packages: $missing" >&2
    echo "lnet: install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $missing" >&2
    exit 1
  fi
  echo "lnet: installing: $missing"
  # shellcheck disable=SC2086  # $missing is a list of package names
  if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null ||
     ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
         --no-install-recommends $missing >/dev/null; then
    echo "lnet: apt-get failed to install: $missing" >&2
    exit 1
  fi
  missing=$(lnet_deps_missing | tr '\n' ' ')
  if [ -n "${missing// /}" ]; then
    echo "lnet: still missing after apt-get install: $missing" >&2
    exit 1
  fi
}

lnet_deps
