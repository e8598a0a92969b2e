#!/usr/bin/env bash
# Runs eci's e2e suite on a kind cluster. Needs docker, kind, kubectl, helm and go; it
# cannot run on the eci dev machines (no container engine: they use the local harness).
# See test/kind/README.md.
#
#   test/kind/run.sh                          build the image with docker build, test, tear down
#   IMAGE_ARCHIVE=eci.tar test/kind/run.sh    load a tarball from hack/mkimage instead
#   KEEP=1 test/kind/run.sh                   keep the cluster afterwards
#
# The release is eci in namespace eci-system, as test/e2e expects.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

CLUSTER=${CLUSTER:-eci-e2e}
KEEP=${KEEP:-0}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-} # e.g. kindest/node:v1.34.x; empty: kind's default
IMAGE_ARCHIVE=${IMAGE_ARCHIVE:-}     # docker-save tarball of the eci image (hack/mkimage eci)
VERSION=${VERSION:-e2e}
COMMIT=${COMMIT:-$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)}
IMAGE=${IMAGE:-}                     # default: ghcr.io/eci-dev/eci:e2e, or the archive's tag
BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-localhost/eci-test/busybox:1.35}
READY_TIMEOUT=${READY_TIMEOUT:-300s}
E2E_TIMEOUT=${E2E_TIMEOUT:-30m}
# Extra arguments: HELM_ARGS for helm upgrade, E2E_ARGS for the test binary (after -args).
read -r -a helm_args <<<"${HELM_ARGS:-}"
read -r -a e2e_args <<<"${E2E_ARGS:-}"

log() { printf 'kind-e2e: %s\n' "$*"; }
die() { printf 'kind-e2e: error: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm go; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found in PATH (this script needs docker, kind, kubectl, helm and go)"
done
docker info >/dev/null 2>&1 || die "docker does not answer (is the daemon running, may this user use it?)"
[[ -f $root/charts/eci/Chart.yaml ]] || die "chart $root/charts/eci not found"

workdir=$root/.cache/kind
mkdir -p "$workdir"
export KUBECONFIG=$workdir/$CLUSTER.kubeconfig

created=0
teardown() {
	local rc=$?
	if ((rc != 0)); then
		log "failed (exit $rc); cluster state:"
		kubectl get nodes -o wide --show-labels 2>&1 || true
		kubectl get pods -A -o wide 2>&1 || true
		kubectl -n eci-system logs -l app.kubernetes.io/name=eci --all-containers --prefix --tail=50 2>&1 || true
		if [[ -n ${ARTIFACTS:-} ]]; then
			kind export logs "$ARTIFACTS/kind-logs" --name "$CLUSTER" >/dev/null 2>&1 || true
			log "kind logs in $ARTIFACTS/kind-logs"
		fi
	fi
	if [[ $KEEP == 1 ]]; then
		log "KEEP=1: cluster $CLUSTER kept; use it with: export KUBECONFIG=$KUBECONFIG"
		log "delete it with: kind delete cluster --name $CLUSTER"
	elif ((created)) || kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
		log "deleting cluster $CLUSTER (KEEP=1 keeps it)"
		kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
		rm -f "$KUBECONFIG"
	fi
	exit "$rc"
}
trap teardown EXIT

# 1. Cluster.
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
	log "reusing existing cluster $CLUSTER"
	kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
else
	log "creating cluster $CLUSTER"
	create=(kind create cluster --name "$CLUSTER" --config "$root/test/kind/kind-config.yaml"
		--kubeconfig "$KUBECONFIG" --wait 180s)
	[[ -n $KIND_NODE_IMAGE ]] && create+=(--image "$KIND_NODE_IMAGE")
	created=1
	"${create[@]}"
fi

# 2. The eci image.
if [[ -n $IMAGE_ARCHIVE ]]; then
	[[ -f $IMAGE_ARCHIVE ]] || die "IMAGE_ARCHIVE $IMAGE_ARCHIVE not found"
	archive_tag=$(tar -xOf "$IMAGE_ARCHIVE" manifest.json | sed -n 's/.*"RepoTags":\["\([^"]*\)".*/\1/p')
	[[ -n $archive_tag ]] || die "$IMAGE_ARCHIVE has no tag in its manifest.json (not a docker-save tarball?)"
	if [[ -z $IMAGE ]]; then
		IMAGE=$archive_tag
	elif [[ $IMAGE != "$archive_tag" ]]; then
		die "IMAGE=$IMAGE but $IMAGE_ARCHIVE is tagged $archive_tag"
	fi
	log "loading $IMAGE_ARCHIVE ($IMAGE)"
	kind load image-archive "$IMAGE_ARCHIVE" --name "$CLUSTER"
else
	IMAGE=${IMAGE:-ghcr.io/eci-dev/eci:$VERSION}
	log "docker build -t $IMAGE"
	docker build -t "$IMAGE" --build-arg VERSION="$VERSION" --build-arg COMMIT="$COMMIT" "$root"
	kind load docker-image "$IMAGE" --name "$CLUSTER"
fi
[[ $IMAGE == *:* && ${IMAGE##*:} != */* ]] || die "IMAGE $IMAGE has no tag"
image_repo=${IMAGE%:*}
image_tag=${IMAGE##*:}

# 3. The test image the suite runs with imagePullPolicy Never: hack/mkimage busybox (from
#    Debian's busybox-static, as on the dev machines) when this host has a static
#    /bin/busybox, else Docker Hub's busybox retagged.
bb_archive=$workdir/busybox.tar
if [[ -x /bin/busybox ]] && (cd "$root" && go run ./hack/mkimage busybox -tag "$BUSYBOX_IMAGE" -o "$bb_archive"); then
	kind load image-archive "$bb_archive" --name "$CLUSTER"
else
	log "no usable /bin/busybox here: using docker.io/library/busybox:1.35.0 as $BUSYBOX_IMAGE"
	docker pull docker.io/library/busybox:1.35.0
	docker tag docker.io/library/busybox:1.35.0 "$BUSYBOX_IMAGE"
	kind load docker-image "$BUSYBOX_IMAGE" --name "$CLUSTER"
fi

# 4. eci, from the chart. The suite uninstalls and reinstalls the release itself (release
#    eci in eci-system) with ECI_E2E_HELM_ARGS, so it gets the same settings.
install_args=(
	--set "image.repository=$image_repo"
	--set "image.tag=$image_tag"
	--set image.pullPolicy=Never
	"${helm_args[@]}"
)
log "helm upgrade --install eci ($IMAGE) in eci-system"
helm upgrade --install eci "$root/charts/eci" \
	--namespace eci-system --create-namespace \
	--wait --timeout "$READY_TIMEOUT" \
	"${install_args[@]}"

# 5. Every node reports eci ready (eci-node labels its node once the handler is live; the
#    DaemonSet tolerates every taint, the control plane included, and the suite waits for
#    all nodes too).
log "waiting for eci.dev/runtime=ready on every node"
kubectl wait node --all --for=jsonpath='{.metadata.labels.eci\.dev/runtime}'=ready --timeout="$READY_TIMEOUT"

# 6. The e2e suite.
log "go test ./test/e2e/..."
(
	cd "$root"
	ECI_E2E=1 ECI_E2E_IMAGE=$BUSYBOX_IMAGE ECI_E2E_HELM_ARGS="${install_args[*]}" \
		go test -count=1 -timeout "$E2E_TIMEOUT" ./test/e2e/... -args "${e2e_args[@]}"
)
log "e2e passed"
