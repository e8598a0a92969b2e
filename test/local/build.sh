#!/usr/bin/env bash
# Builds everything the local cluster (test/local/cluster.sh) runs, from pinned
# sources (hack/versions.env), into
#
#   ${ECI_CACHE_DIR:-/var/cache/eci}/local/bin/        binaries
#   ${ECI_CACHE_DIR:-/var/cache/eci}/local/bin/cni/    CNI plugins
#   ${ECI_CACHE_DIR:-/var/cache/eci}/local/stamps/     one recipe file per piece
#
# outside the clone, so other clones and CI runs on this machine reuse them.
# A piece whose stamp matches its recipe (version, Go, flags, go.sum) is
# skipped; anything else is rebuilt in a temporary directory and moved into
# place by rename (a running binary keeps its old inode). Also installs the
# Debian packages the cluster needs (root; pinned like hack/install-deps.sh).
#
# Usage: test/local/build.sh [piece...]   (default: all; pieces: deps runc
#        kubernetes etcd containerd cni crictl helm tools)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../hack/versions.env
. "$root/hack/versions.env"

cache=${ECI_CACHE_DIR:-/var/cache/eci}
out=$cache/local/bin
stamps=$cache/local/stamps
tools=$here/tools

export GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local

log() { printf '[build] %s\n' "$*"; }
die() {
	printf '[build] error: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- apt packages

# installed_version PKG prints the installed version, or nothing.
installed_version() {
	local s
	s=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null) || return 0
	case $s in
	ii\ *) printf '%s' "${s#* }" | sed 's/^ *//' ;;
	esac
}

build_deps() {
	command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: Debian 12 only"
	# iptables: kubelet, kube-proxy, the egress guard. busybox-static: the test
	# image. openssl: the cluster's PKI. iproute2, util-linux (flock, findmnt,
	# nsenter), mount, procps: cluster.sh itself.
	# uidmap: getsubids, through which the kubelet reads its user-namespace id range.
	local pinned=("iptables=$IPTABLES_VERSION" "busybox-static=$BUSYBOX_STATIC_VERSION" "uidmap=$UIDMAP_VERSION")
	local unpinned=(openssl iproute2 util-linux mount procps)
	local todo=() spec pkg want have
	for spec in "${pinned[@]}"; do
		pkg=${spec%%=*} want=${spec#*=}
		have=$(installed_version "$pkg")
		[[ $have == "$want" ]] || todo+=("$spec")
	done
	for pkg in "${unpinned[@]}"; do
		[[ -n $(installed_version "$pkg") ]] || todo+=("$pkg")
	done
	if ((${#todo[@]} == 0)); then
		log "apt packages: present (${pinned[*]} ${unpinned[*]})"
		return
	fi
	[[ $(id -u) -eq 0 ]] || die "must run as root to install: ${todo[*]}"
	export DEBIAN_FRONTEND=noninteractive
	log "apt packages: installing ${todo[*]}"
	apt-get update -q >/dev/null || die "apt-get update failed"
	for spec in "${todo[@]}"; do
		[[ $spec == *=* ]] || continue
		pkg=${spec%%=*} want=${spec#*=}
		apt-cache madison "$pkg" | awk -F' *\\| *' '{print $2}' | grep -xF -- "$want" >/dev/null ||
			die "$pkg $want is not available from the configured apt sources (available: $(apt-cache madison "$pkg" | awk -F' *\\| *' '{print $2}' | paste -sd, -)); update hack/versions.env"
	done
	apt-get install -y -q --no-install-recommends --allow-downgrades "${todo[@]}" >/dev/null ||
		die "apt-get install ${todo[*]} failed"
	for spec in "${pinned[@]}"; do
		pkg=${spec%%=*} want=${spec#*=}
		have=$(installed_version "$pkg")
		[[ $have == "$want" ]] || die "$pkg is at '${have:-none}' after install, want $want"
	done
	log "apt packages: installed"
}

# ------------------------------------------------------------------ machinery

goenv() { printf 'go=%s %s/%s' "$(go env GOVERSION)" "$(go env GOOS)" "$(go env GOARCH)"; }
sumof() { cat "$@" | sha256sum | cut -c1-16; }

# piece NAME VERSION COLD RECIPE OUTPUTS BUILDFN: runs BUILDFN TMPDIR unless the
# stamp of NAME equals RECIPE and every output (paths relative to $out) exists,
# then moves each output from TMPDIR into $out and writes the stamp. BUILDFN
# runs in an `if`, where set -e is off: it must return on every failure.
piece() {
	local name=$1 version=$2 cold=$3 recipe=$4 outputs=$5 fn=$6
	local stamp=$stamps/$name o missing=
	for o in $outputs; do [[ -x $out/$o ]] || missing=1; done
	if [[ -z $missing && -f $stamp && $(<"$stamp") == "$recipe" ]]; then
		log "$name $version: up to date"
		return
	fi
	log "$name $version ... (cold: ~$cold)"
	local tmp start=$SECONDS
	tmp=$(mktemp -d "$cache/local/.build-$name.XXXXXX")
	if ! "$fn" "$tmp"; then
		rm -rf "$tmp"
		die "$name $version failed"
	fi
	rm -f "$stamp"
	for o in $outputs; do
		[[ -x $tmp/$o ]] || {
			rm -rf "$tmp"
			die "$name: $o was not built"
		}
		mkdir -p "$(dirname "$out/$o")"
		mv -f "$tmp/$o" "$out/$o"
	done
	rm -rf "$tmp"
	printf '%s\n' "$recipe" >"$stamp"
	log "$name $version done in $((SECONDS - start)) s"
}

# check_version LINE CMD...: CMD's output has a line starting with LINE.
check_version() {
	local want=$1 got line
	shift
	# Output captured first: `cmd | grep -q` fails under pipefail (SIGPIPE).
	got=$("$@" 2>&1) || true
	while IFS= read -r line; do
		[[ $line != "$want"* ]] || return 0
	done <<<"$got"
	log "$(basename "$1") says: ${got%%$'\n'*} (want $want)"
	return 1
}

# gomod_require DIR MODULE prints the version DIR/go.mod requires of MODULE.
gomod_require() {
	(cd "$1" && go list -m -f '{{.Version}}' "$2")
}

# ---------------------------------------------------------------------- pieces

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

k8s_ldflags() {
	local v=${KUBERNETES_VERSION#v} major minor pkg flags="-s -w"
	major=${v%%.*} minor=${v#*.} minor=${minor%%.*}
	local date
	date=$(cd "$tools/kubernetes" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
	# Both packages, as kubernetes' hack/lib/version.sh does.
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		# No commit: the module proxy does not say which one the tag names.
		flags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=archive -X $pkg.buildDate=$date"
	done
	printf '%s' "$flags"
}

build_kubernetes() {
	local tmp=$1 c pkgs=()
	for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	(cd "$tools/kubernetes" && CGO_ENABLED=0 go build -trimpath -ldflags "$(k8s_ldflags)" -o "$tmp/" "${pkgs[@]}") || return
	check_version "Client Version: $KUBERNETES_VERSION" "$tmp/kubectl" version --client
}

build_etcd() {
	local tmp=$1
	(cd "$tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3) || return
	check_version "etcd Version: ${ETCD_VERSION#v}" "$tmp/etcd" --version
}

# goinstall TMP TAGS LDFLAGS PKG@VERSION...: `go install` outside any module.
goinstall() {
	local tmp=$1 tags=$2 ldflags=$3
	shift 3
	(cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp/${GOINSTALL_SUBDIR:-}" go install -trimpath -tags "$tags" -ldflags "$ldflags" "$@")
}

build_containerd() {
	local tmp=$1 pkg=github.com/containerd/containerd/v2
	local ldflags="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Package=$pkg"
	# Tags as containerd's Makefile sets them (the shim has no gRPC server).
	goinstall "$tmp" urfave_cli_no_docs "$ldflags" "$pkg/cmd/containerd@$CONTAINERD_VERSION" "$pkg/cmd/ctr@$CONTAINERD_VERSION" || return
	goinstall "$tmp" "urfave_cli_no_docs no_grpc" "$ldflags" "$pkg/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" || return
	check_version "containerd github.com/containerd/containerd/v2 $CONTAINERD_VERSION " "$tmp/containerd" --version
}

cni_plugins=(main/bridge ipam/host-local main/loopback meta/portmap)

build_cni() {
	local tmp=$1 p pkgs=() m=github.com/containernetworking/plugins
	for p in "${cni_plugins[@]}"; do pkgs+=("$m/plugins/$p@$CNI_PLUGINS_VERSION"); done
	mkdir -p "$tmp/cni"
	GOINSTALL_SUBDIR=cni goinstall "$tmp" "" "-s -w -X $m/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" "${pkgs[@]}"
}

build_crictl() {
	local tmp=$1
	goinstall "$tmp" "" "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
		"sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

build_helm() {
	local tmp=$1 gomod cg major minor
	# Helm's Makefile derives its default Kubernetes version from its client-go.
	gomod=$(cd "$tmp" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	[[ -f $gomod ]] || return
	cg=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")
	cg=${cg#v} major=$((${cg%%.*} + 1)) minor=${cg#*.} minor=${minor%%.*}
	local h=helm.sh/helm/v3
	goinstall "$tmp" "" "-s -w -X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean \
-X $h/pkg/lint/rules.k8sVersionMajor=$major -X $h/pkg/lint/rules.k8sVersionMinor=$minor \
-X $h/pkg/chartutil.k8sVersionMajor=$major -X $h/pkg/chartutil.k8sVersionMinor=$minor" \
		"$h/cmd/helm@$HELM_VERSION" || return
	check_version "$HELM_VERSION" "$tmp/helm" version --short
}

# build_tools builds eci's image builder (hack/mkimage), which makes the harness's pause and
# busybox images; it must run from inside eci's module (it builds the pause program).
build_tools() {
	local tmp=$1
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/" ./hack/mkimage)
}

# check_pin DIR MODULE WANT: DIR/go.mod must require MODULE at WANT.
check_pin() {
	local have
	have=$(gomod_require "$1" "$2") || die "cannot read $2 from $1/go.mod"
	[[ $have == "$3" ]] || die "$1/go.mod requires $2 $have but hack/versions.env pins $3: update the go.mod (see its header)"
}

# ------------------------------------------------------------------------ main

main() {
	local all=(deps runc kubernetes etcd containerd cni crictl helm tools) want=("$@") p
	((${#want[@]})) || want=("${all[@]}")
	command -v go >/dev/null || die "go not found in PATH (need go$GO_VERSION)"
	[[ $(go env GOVERSION) == "go$GO_VERSION" ]] || log "warning: $(go env GOVERSION) in PATH, the project is pinned to go$GO_VERSION"
	mkdir -p "$out/cni" "$stamps" || die "cannot create $out (set ECI_CACHE_DIR)"
	# One build at a time per cache dir (other clones on this machine share it).
	exec 9>"$cache/local/.build.lock"
	flock -n 9 || {
		log "another build holds $cache/local/.build.lock; waiting"
		flock 9
	}
	local start=$SECONDS
	for p in "${want[@]}"; do
		case $p in
		deps) build_deps ;;
		runc)
			# The repo's own pinned runc build (as `make bin/runc`), cached by
			# hack/build-runc.sh; it replaces $out/runc only by rename.
			log "runc $RUNC_VERSION (hack/build-runc.sh) ..."
			bash "$root/hack/build-runc.sh" "$out/runc" | sed 's/^/[build]   /'
			;;
		kubernetes)
			check_pin "$tools/kubernetes" k8s.io/kubernetes "$KUBERNETES_VERSION"
			check_pin "$tools/kubernetes" k8s.io/api "$KUBERNETES_STAGING_VERSION"
			piece kubernetes "$KUBERNETES_VERSION" "12 min, 35 s with warm Go caches" \
				"kubernetes=$KUBERNETES_VERSION $(goenv) cgo=0 trimpath ldflags=$(k8s_ldflags) mod=$(sumof "$tools/kubernetes/go.mod" "$tools/kubernetes/go.sum")" \
				"${k8s_cmds[*]}" build_kubernetes
			;;
		etcd)
			check_pin "$tools/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
			piece etcd "$ETCD_VERSION" "1 min" \
				"etcd=$ETCD_VERSION $(goenv) cgo=0 trimpath ldflags=-s-w mod=$(sumof "$tools/etcd/go.mod" "$tools/etcd/go.sum")" \
				etcd build_etcd
			;;
		containerd)
			piece containerd "$CONTAINERD_VERSION" "2 min" \
				"containerd=$CONTAINERD_VERSION $(goenv) cgo=0 trimpath tags=urfave_cli_no_docs,shim:+no_grpc ldflags=-s-w,version" \
				"containerd containerd-shim-runc-v2 ctr" build_containerd
			;;
		cni)
			piece cni-plugins "$CNI_PLUGINS_VERSION" "15 s" \
				"cni-plugins=$CNI_PLUGINS_VERSION ${cni_plugins[*]} $(goenv) cgo=0 trimpath ldflags=-s-w,version" \
				"cni/bridge cni/host-local cni/loopback cni/portmap" build_cni
			;;
		crictl)
			piece crictl "$CRICTL_VERSION" "1 min" \
				"crictl=$CRICTL_VERSION $(goenv) cgo=0 trimpath ldflags=-s-w,version" \
				crictl build_crictl
			;;
		helm)
			piece helm "$HELM_VERSION" "3 min" \
				"helm=$HELM_VERSION $(goenv) cgo=0 trimpath ldflags=-s-w,version,k8sversion" \
				helm build_helm
			;;
		tools)
			piece tools "(hack/mkimage)" "20 s" \
				"mkimage $(goenv) cgo=0 trimpath ldflags=-s-w src=$(cd "$root" && find go.mod go.sum hack/mkimage -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)" \
				"mkimage" build_tools
			;;
		*) die "unknown piece $p (pieces: ${all[*]})" ;;
		esac
	done
	log "all done in $((SECONDS - start)) s: $out"
}

main "$@"
