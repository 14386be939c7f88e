#!/bin/sh
# Installs the Debian packages tailor's build needs. Idempotent: with
# --check it only reports whether anything is missing (exit 1 if so).
# apt-get runs directly as root, through sudo otherwise.
set -eu

PKGS="cmake pkg-config libsqlite3-dev libcjson-dev libcurl4-openssl-dev libssl-dev libzip-dev"
# The test build needs the sanitizer runtimes (gcc ships them) and clang
# for the libFuzzer targets of `make fuzz`.
PKGS="$PKGS clang"

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done

if [ "${1:-}" = "--check" ]; then
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
