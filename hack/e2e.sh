#!/usr/bin/env bash
# make e2e: the e2e suite (test/e2e) against the local cluster (started if KUBECONFIG is
# unset) or the cluster KUBECONFIG names, with the chart installed first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh

if [[ ${ECI_E2E_DOWN:-} == 1 && -z ${KUBECONFIG:-} ]]; then
	# make test leaves the machine as it found it.
	teardown() {
		step "uninstalling eci and tearing the local cluster down"
		if [[ -n ${HELM:-} ]]; then
			# eci pods first: while eci containers exist, eci-node keeps its binaries
			# (their shims still call them).
			"$KUBECTL" get pods -A -o jsonpath='{range .items[?(@.spec.runtimeClassName=="eci")]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}' |
				while read -r ns name; do
					"$KUBECTL" delete pod -n "$ns" "$name" --grace-period=0 --wait=true >&2 || true
				done
			"$HELM" uninstall eci --namespace eci-system --wait --timeout 5m >&2 || true
		fi
		bash test/local/cluster.sh down >&2
	}
	trap teardown EXIT
fi
eci_cluster_and_chart
step "helm lint --strict charts/eci"
"$HELM" lint --strict charts/eci >&2
export ECI_E2E=1 ECI_E2E_HELM=$HELM ECI_E2E_HELM_ARGS=$HELM_ARGS ECI_E2E_KUBECTL=$KUBECTL
if [[ $LOCAL_CLUSTER == 1 ]]; then
	export ECI_E2E_IMAGE=localhost/eci-test/busybox:1.35
	export ECI_E2E_CONTAINERD_CONFIG=/etc/containerd/config.toml
	export ECI_E2E_CONTAINERD_CONFIG_ORIGINAL=$LOCAL_DIR/config/containerd.toml
	export ECI_E2E_CONTAINERD_PIDFILE=$LOCAL_DIR/run/containerd.pid
fi
step "running the e2e suite"
# ECI_E2E_RUN narrows the suite to the tests a -run regexp matches (make e2e-scale).
go test -count=1 -timeout 40m ${ECI_E2E_RUN:+-run "$ECI_E2E_RUN"} -v ./test/e2e/ 2>&1 | grep -v '^=== \(RUN\|PAUSE\|CONT\)'
exit "${PIPESTATUS[0]}"
