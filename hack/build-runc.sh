#!/usr/bin/env bash
# Builds the pinned runc (hack/versions.env) as a static binary with seccomp,
# verifies it with hack/checkrunc, and installs it at $1 (default bin/runc).
#
# The verified binary is cached outside the clone, in
#   ${ECI_CACHE_DIR:-/var/cache/eci}/runc-$RUNC_VERSION
# next to a .recipe file describing how it was built; a later build with the
# same recipe just copies it. A binary that fails verification is deleted.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.env
. "$root/hack/versions.env"

out=${1:-$root/bin/runc}
cache_dir=${ECI_CACHE_DIR:-/var/cache/eci}
cached=$cache_dir/runc-$RUNC_VERSION
recipe_file=$cached.recipe

log() { printf 'build-runc: %s\n' "$*"; }
die() { printf 'build-runc: error: %s\n' "$*" >&2; exit 1; }

tags="seccomp netgo osusergo urfave_cli_no_docs"
# main.version is not set here: runc embeds it from its VERSION file (go:embed).
ldflags="-X main.gitCommit=$RUNC_VERSION -extldflags -static"

# Everything that changes the binary; a cached binary built otherwise is rebuilt.
recipe="runc=$RUNC_VERSION
go=$(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)
tags=$tags
ldflags=$ldflags
cc=$(${CC:-gcc} -dumpfullversion 2>/dev/null || echo unknown)
libseccomp=$(pkg-config --modversion libseccomp 2>/dev/null || echo missing)"

mkdir -p "$cache_dir" || die "cannot create cache dir $cache_dir (set ECI_CACHE_DIR)"
# One build at a time per cache dir (other clones on this machine share it).
exec 9>"$cache_dir/.runc.lock"
flock 9

if [[ -x $cached && -f $recipe_file && $(<"$recipe_file") == "$recipe" ]]; then
	log "cache hit: $cached"
else
	[[ -e $cached ]] && log "cached $cached was built with another recipe: rebuilding"
	rm -f "$cached" "$recipe_file"
	pkg-config --exists libseccomp || die "libseccomp not found by pkg-config: run hack/install-deps.sh (make deps)"

	tmp=$(mktemp -d "$cache_dir/.runc-build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	log "building runc $RUNC_VERSION (tags: $tags) ..."
	start=$SECONDS
	(
		cd "$tmp" # outside any module: @version builds with runc's own go.mod
		CGO_ENABLED=1 GOBIN="$tmp" GOFLAGS=-buildvcs=false go install -trimpath \
			-tags "$tags" -ldflags "$ldflags" \
			"github.com/opencontainers/runc@$RUNC_VERSION"
	) || die "go install github.com/opencontainers/runc@$RUNC_VERSION failed"
	log "built in $((SECONDS - start)) s"

	log "verifying ..."
	if ! (cd "$root" && go run ./hack/checkrunc -static -version "${RUNC_VERSION#v}" "$tmp/runc"); then
		rm -f "$tmp/runc"
		die "runc $RUNC_VERSION failed verification; not cached"
	fi
	mv -f "$tmp/runc" "$cached"
	printf '%s\n' "$recipe" >"$recipe_file"
	log "cached: $cached"
fi

# Replace $out by rename, never by writing into it: a running runc keeps its
# old inode and never sees a half-written file (no ETXTBSY either).
mkdir -p "$(dirname "$out")"
cp "$cached" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
log "installed $out ($("$out" --version | head -1))"
