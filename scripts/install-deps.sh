#!/bin/sh
# Installs the Debian packages tailor's build needs. Idempotent.
#   --check   only report whether anything is missing (exit 1 if so)
#   --fuzz    also clang, for the libFuzzer targets of `make fuzz`
#   --bench   also wrk, the HTTP load generator of `make bench`
# apt-get runs directly as root, through sudo otherwise. The sanitizer
# runtimes of the test build come with gcc.
set -eu

# chromium and Node.js (with npm) serve the browser test and the openai
# client test; Node.js is installed from Debian only when no node is there.
PKGS="cmake pkg-config curl chromium postgresql libpq-dev nginx libsqlite3-dev libcjson-dev libcurl4-openssl-dev libssl-dev libzip-dev libopenblas-dev libpcre2-dev libunistring-dev libedit-dev libmicrohttpd-dev libfaiss-dev"
check=0
for a in "$@"; do
    case "$a" in
        --check) check=1 ;;
        --fuzz) PKGS="$PKGS clang" ;;
        --bench) PKGS="$PKGS wrk" ;;
        *) echo "usage: install-deps.sh [--check] [--fuzz] [--bench]" >&2; exit 64 ;;
    esac
done

command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done

if [ "$check" -eq 1 ]; then
    [ -z "$missing" ] && exit 0
    echo "missing packages:$missing" >&2
    exit 1
fi

if [ -z "$missing" ]; then
    echo "install-deps: all build packages present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: need root or sudo to install:$missing" >&2
    exit 1
fi

echo "install-deps: installing$missing"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
