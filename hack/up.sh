#!/usr/bin/env bash
# make up: bring up eci and show an isolated pod.
#
# With KUBECONFIG unset (and as root) it builds and starts the local single-node cluster
# (test/local), loads the eci image into its containerd, installs the chart, runs a demo
# pod with runtimeClassName: eci and prints what proves isolation. With KUBECONFIG set it
# uses that cluster; the image must then be reachable by its nodes (IMAGE_REPO/IMAGE_TAG,
# e.g. pushed, or loaded with kind load image-archive bin/eci-image.tar).
# The last line printed is KUBECONFIG=<path>.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh

eci_cluster_and_chart
k() { "$KUBECTL" "$@"; }

step "demo: a pod with runtimeClassName: eci"
k delete pod eci-demo eci-demo-refused --ignore-not-found --wait=true >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: eci-demo, namespace: default}
spec:
  runtimeClassName: eci
  terminationGracePeriodSeconds: 0
  containers:
    - name: main
      image: $DEMO_IMAGE
      imagePullPolicy: $DEMO_PULL
      command: [sleep, "3600"]
      securityContext: {privileged: true}
YAML
k wait --for=condition=Ready pod/eci-demo --timeout=120s >/dev/null
echo "pod eci-demo (privileged: true) is Running under eci"
echo "  uid map inside the pod:   $(k exec eci-demo -- cat /proc/self/uid_map | tr -s ' ')"
echo "  (a runc pod shows '0 0 4294967295': container root is host root)"
if [[ $LOCAL_CLUSTER == 1 ]]; then
	cid=$(k get pod eci-demo -o jsonpath='{.status.containerStatuses[0].containerID}')
	cid=${cid#containerd://}
	pid=$("$CRICTL" --runtime-endpoint unix:///run/containerd/containerd.sock inspect --output go-template --template '{{.info.pid}}' "$cid" 2>/dev/null)
	echo "  host uid of its process:  $(awk '/^Uid:/ {print $2}' "/proc/$pid/status") (pid $pid on the host)"
fi
echo "  writing /proc/sys/kernel/panic inside: $(k exec eci-demo -- sh -c 'if { echo 1 > /proc/sys/kernel/panic; } 2>/dev/null; then echo WRITTEN; else echo refused; fi')"

step "demo: a pod that mounts the host's /var/lib/kubelet"
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: eci-demo-refused, namespace: default}
spec:
  runtimeClassName: eci
  terminationGracePeriodSeconds: 0
  containers:
    - name: main
      image: $DEMO_IMAGE
      imagePullPolicy: $DEMO_PULL
      command: [ls, /host]
      volumeMounts: [{name: host, mountPath: /host}]
  volumes: [{name: host, hostPath: {path: /var/lib/kubelet}}]
YAML
msg=""
for _ in $(seq 1 60); do
	msg=$(k get events --field-selector involvedObject.name=eci-demo-refused -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep -m1 -o 'bind mount of host path.*' || true)
	[[ -n $msg ]] && break
	sleep 1
done
[[ -n $msg ]] || die "no event explains why eci-demo-refused did not start (kubectl describe pod eci-demo-refused)"
echo "  refused: ${msg%%\"*}"
k delete pod eci-demo-refused --wait=false >/dev/null

step "eci is up. Try: kubectl exec eci-demo -- id; kubectl describe pod eci-demo-refused"
echo "KUBECONFIG=$KUBECONFIG"
