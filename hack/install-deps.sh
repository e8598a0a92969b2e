#!/usr/bin/env bash
# Installs what eci's build and tests need on Debian 12, at the versions pinned
# in hack/versions.env. Idempotent: does nothing (and needs no root) when
# everything is already there at the right version.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.env
. "$root/hack/versions.env"

log() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

# Packages pinned to an exact version.
pinned=(
	"libseccomp-dev=$LIBSECCOMP_DEV_VERSION"
	"busybox-static=$BUSYBOX_STATIC_VERSION"
)
# Packages needed at whatever version the distribution has: cgo toolchain for
# runc (gcc, libc6-dev incl. static libc), pkg-config (libseccomp-golang),
# make, git (Makefile), util-linux (flock), binutils.
unpinned=(gcc libc6-dev pkg-config make git util-linux binutils)

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian 12 only"

# installed_version PKG prints the installed version, or nothing.
installed_version() {
	local out
	out=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null) || return 0
	case $out in
	ii\ *) printf '%s' "${out#* }" | sed 's/^ *//' ;;
	esac
}

todo=()
for spec in "${pinned[@]}"; do
	pkg=${spec%%=*} want=${spec#*=}
	have=$(installed_version "$pkg")
	if [[ $have == "$want" ]]; then
		log "ok      $pkg $have"
	elif [[ -z $have ]]; then
		log "missing $pkg (want $want)"
		todo+=("$spec")
	else
		log "wrong   $pkg $have (want $want)"
		todo+=("$spec")
	fi
done
for pkg in "${unpinned[@]}"; do
	have=$(installed_version "$pkg")
	if [[ -n $have ]]; then
		log "ok      $pkg $have"
	else
		log "missing $pkg"
		todo+=("$pkg")
	fi
done

# Go is not an apt package here (Debian 12's is too old): check, don't install.
if ! command -v go >/dev/null 2>&1; then
	die "go not found in PATH (need go$GO_VERSION, e.g. /usr/local/go/bin)"
fi
gover=$(go env GOVERSION)
if [[ $gover != "go$GO_VERSION" ]]; then
	log "warning: $gover in PATH, the project is pinned to go$GO_VERSION"
else
	log "ok      $gover"
fi

if ((${#todo[@]} == 0)); then
	log "all dependencies present"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	die "must run as root to install: ${todo[*]} (run: sudo $0)"
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -q >/dev/null || die "apt-get update failed"

# Fail with a clear message rather than apt's when a pin has left the archive.
for spec in "${todo[@]}"; do
	[[ $spec == *=* ]] || continue
	pkg=${spec%%=*} want=${spec#*=}
	if ! apt-cache madison "$pkg" | awk -F' *\\| *' '{print $2}' | grep -qxF -- "$want"; then
		die "$pkg $want is not available from the configured apt sources (available: $(apt-cache madison "$pkg" | awk -F' *\\| *' '{print $2}' | paste -sd, -)); update LIBSECCOMP_DEV_VERSION/BUSYBOX_STATIC_VERSION in hack/versions.env"
	fi
done

log "apt-get install ${todo[*]}"
apt-get install -y -q --no-install-recommends --allow-downgrades "${todo[@]}"

# Verify what we promised.
for spec in "${pinned[@]}"; do
	pkg=${spec%%=*} want=${spec#*=}
	have=$(installed_version "$pkg")
	[[ $have == "$want" ]] || die "$pkg is at '${have:-none}' after install, want $want"
done
log "done"
