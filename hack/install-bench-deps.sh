#!/usr/bin/env bash
# Installs what make bench needs beyond make deps, at the versions pinned in
# hack/versions.env: LXCFS, which the /proc emulation benchmark runs side by side with
# eci's server. Debian 12, root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/versions.env
source hack/versions.env
have=$(dpkg-query -W -f='${Version}' lxcfs 2>/dev/null || true)
if [[ $have == "$LXCFS_VERSION" ]]; then
	echo "install-bench-deps: lxcfs $have already installed"
	exit 0
fi
echo "install-bench-deps: installing lxcfs=$LXCFS_VERSION"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "lxcfs=$LXCFS_VERSION"
