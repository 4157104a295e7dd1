#!/bin/sh
# Installs Debian packages: `tests/apt-install.sh <package>...`.
# Tries with the package lists the machine has first; only if that fails
# does it update them, and an index that fails to update (a mirror mid-sync,
# an architecture or suite these packages do not come from) is reported but
# not fatal: the install that follows decides.
set -u
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "$@" >/dev/null 2>&1 && exit 0
apt-get update -qq || echo "apt-get update reported errors; installing with the lists it has"
exec apt-get install -y -qq "$@" >/dev/null
