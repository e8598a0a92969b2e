# Shared by hack/up.sh and hack/e2e.sh: find or start the cluster, build and load the image,
# install the chart. Sets KUBECONFIG, KUBECTL, HELM, CRICTL, LOCAL_CLUSTER, HELM_ARGS,
# DEMO_IMAGE, DEMO_PULL.
# shellcheck shell=bash

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

LOCAL_DIR=${ECI_LOCAL_DIR:-/var/lib/eci-local}
LOCAL_BIN=${ECI_CACHE_DIR:-/var/cache/eci}/local/bin
VERSION=${VERSION:-0.1.0-dev}
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/eci-dev/eci}
IMAGE_TAG=${IMAGE_TAG:-$VERSION}

eci_cluster_and_chart() {
	LOCAL_CLUSTER=0
	if [[ -z ${KUBECONFIG:-} ]]; then
		[[ $(id -u) == 0 ]] || die "KUBECONFIG is unset and this is not root: set KUBECONFIG, or run as root to start the local cluster"
		step "building the local cluster's components (cold: ~20 min, then cached in $LOCAL_BIN)"
		bash test/local/build.sh
		step "starting the local cluster"
		local out
		# Not tee /dev/stderr: tee opens it with O_TRUNC, which empties a log file that
		# stderr is redirected to (CI's log lost everything before this line).
		out=$(bash test/local/cluster.sh up | tee >(cat >&2) | tail -n 1)
		[[ $out == KUBECONFIG=* ]] || die "test/local/cluster.sh up did not end with KUBECONFIG=..."
		export KUBECONFIG=${out#KUBECONFIG=}
		LOCAL_CLUSTER=1
	elif [[ $KUBECONFIG == "$LOCAL_DIR"/* ]]; then
		LOCAL_CLUSTER=1
	fi
	KUBECTL=${KUBECTL:-$(command -v kubectl || echo "$LOCAL_BIN/kubectl")}
	HELM=${HELM:-$(command -v helm || echo "$LOCAL_BIN/helm")}
	CRICTL=${CRICTL:-$LOCAL_BIN/crictl}
	[[ -x $KUBECTL ]] || die "kubectl not found (PATH or $LOCAL_BIN)"
	[[ -x $HELM ]] || die "helm not found (PATH or $LOCAL_BIN)"
	export KUBECTL HELM CRICTL LOCAL_CLUSTER

	step "building eci and its image"
	make --no-print-directory build image IMAGE_REPO="$IMAGE_REPO" IMAGE_TAG="$IMAGE_TAG" >&2
	HELM_ARGS="--set image.repository=$IMAGE_REPO --set image.tag=$IMAGE_TAG"
	DEMO_IMAGE=${ECI_DEMO_IMAGE:-busybox:1.36}
	DEMO_PULL=IfNotPresent
	if [[ $LOCAL_CLUSTER == 1 ]]; then
		step "loading the image into the local containerd"
		"$LOCAL_BIN/ctr" --address /run/containerd/containerd.sock -n k8s.io images import bin/eci-image.tar >&2
		HELM_ARGS+=" --set image.pullPolicy=Never --set node.criRestart=signal:$LOCAL_DIR/run/containerd.pid"
		DEMO_IMAGE=localhost/eci-test/busybox:1.35
		DEMO_PULL=Never
	fi
	export HELM_ARGS DEMO_IMAGE DEMO_PULL
	# helm installs crds/ only on a first install, never on an upgrade: apply them first.
	step "applying eci's CRDs (charts/eci/crds)"
	"$KUBECTL" apply --server-side --force-conflicts -f charts/eci/crds/ >&2
	"$KUBECTL" wait --for=condition=Established crd --all --timeout=60s >/dev/null
	step "helm upgrade --install eci charts/eci (namespace eci-system)"
	# shellcheck disable=SC2086
	"$HELM" upgrade --install eci charts/eci --namespace eci-system --create-namespace --wait --timeout 5m $HELM_ARGS >&2
	step "waiting for every node to be labelled eci.dev/runtime=ready"
	local i
	for i in $(seq 1 180); do
		if [[ -z $("$KUBECTL" get nodes -l 'eci.dev/runtime!=ready' -o name) ]]; then
			break
		fi
		sleep 1
	done
	[[ $i -lt 180 ]] || die "nodes not ready for eci after 3 min: $("$KUBECTL" get nodes -L eci.dev/runtime)"
	"$KUBECTL" get nodes -L eci.dev/runtime >&2
}
