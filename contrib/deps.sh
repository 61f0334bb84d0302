#!/bin/sh
# Install the Debian packages renewd needs to build and test, and only the
# ones that are missing. Safe to run again; does nothing when all are there.
set -eu

pkgs="build-essential cmake pkg-config
libsqlite3-dev libssl-dev libuv1-dev libyaml-dev libcurl4-openssl-dev
libjansson-dev libplist-dev libmicrohttpd-dev libcmocka-dev
sqlite3 openssl python3 python3-aiosmtpd curl scep
clang libclang-rt-14-dev llvm"

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing
