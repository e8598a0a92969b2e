#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, from the binaries that
# test/local/build.sh built (no Docker, no systemd, no registry).
#
#   test/local/cluster.sh up             start (or complete) the cluster; last line: KUBECONFIG=...
#   test/local/cluster.sh down [--purge] stop it and remove every process, mount, netns, veth,
#                                        cgroup and iptables rule it made (--purge: state too)
#   test/local/cluster.sh status         what runs
#   test/local/cluster.sh env            export KUBECONFIG=... (eval "$(test/local/cluster.sh env)")
#
# State (PKI, configs, kubeconfigs, logs, pid files, etcd data, image tarballs)
# lives in ${ECI_LOCAL_DIR:-/var/lib/eci-local}; binaries in
# ${ECI_CACHE_DIR:-/var/cache/eci}/local/bin. containerd runs under a
# supervisor loop: `kill -TERM $(cat $ECI_LOCAL_DIR/run/containerd.pid)`
# restarts it (running containers survive). See test/local/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../hack/versions.env
. "$root/hack/versions.env"

cache=${ECI_CACHE_DIR:-/var/cache/eci}
bin=$cache/local/bin
state=${ECI_LOCAL_DIR:-/var/lib/eci-local}
pki=$state/pki
conf=$state/config
logs=$state/logs
run=$state/run
images=$state/images
cni_conf_dir=$state/cni/net.d
cni_bin_dir=$bin/cni
kubeconfig=$state/admin.kubeconfig

# containerd and kubelet use their standard paths: eci-node edits the
# containerd config and restarts containerd like on any node.
containerd_config=/etc/containerd/config.toml
containerd_sock=/run/containerd/containerd.sock
containerd_root=/var/lib/containerd
containerd_state=/run/containerd
kubelet_root=/var/lib/kubelet
marker='# eci-local-harness: written by test/local/cluster.sh'

# The node's address: a /32 on lo, so that pods reach the API server through
# the kubernetes Service (10.96.0.1:443 -> NODE_IP:6443) without it ever
# listening on a real interface. TEST-NET-2: never routed on any network.
node_ip=${ECI_LOCAL_NODE_IP:-198.51.100.1}
node_name=$(hostname | tr '[:upper:]' '[:lower:]')
cluster_cidr=10.244.0.0/16 # pods; the egress guard's "inside"
pod_cidr=10.244.0.0/24     # this node's pods (host-local IPAM)
svc_cidr=10.96.0.0/16
api_vip=10.96.0.1
api_port=6443
etcd_port=23790
etcd_peer_port=23800
bridge=cni0
netns_dir=/run/netns
net_name=eci-local
pause_image=localhost/eci-test/pause:1
busybox_image=localhost/eci-test/busybox:1.35
# iptables chains of our own (down removes exactly these, plus kubelet's,
# kube-proxy's and the CNI plugins').
guard_chain=ECI-LOCAL-GUARD
output_chain=ECI-LOCAL-OUTPUT
# Host sysctls that the cluster changes (kubelet sets the vm./kernel. ones);
# up saves them once, down restores them.
sysctls=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
	vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

export PATH=$bin:$PATH

t0=${EPOCHREALTIME/./}
now() { local t=${EPOCHREALTIME/./}; printf '%d.%d' $(((t - t0) / 1000000)) $(((t - t0) / 100000 % 10)); }
log() { printf '[%s %6ss] %s\n' "$cmd" "$(now)" "$*"; }
warn() { printf '[%s %6ss] warning: %s\n' "$cmd" "$(now)" "$*" >&2; }
die() {
	printf '[%s] error: %s\n' "$cmd" "$*" >&2
	exit 1
}
cmd=${1:-}

kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
cri() { CRI_CONFIG_FILE=/dev/null crictl -r "unix://$containerd_sock" -i "unix://$containerd_sock" -t 10s "$@"; }
ctrk() { ctr -a "$containerd_sock" -n k8s.io "$@"; }

# wait_for DESC SECONDS CMD...: retries CMD every 0.2 s until it succeeds.
wait_for() {
	local desc=$1 deadline=$((${EPOCHREALTIME/./} + $2 * 1000000))
	shift 2
	until "$@" >/dev/null 2>&1; do
		((${EPOCHREALTIME/./} < deadline)) || return 1
		sleep 0.2
	done
	log "$desc"
}

# write_if_changed FILE [MODE]: stdin to FILE, only when the content differs
# (kube-proxy exits when its config file is rewritten, even unchanged).
# Returns 0 when it wrote, 1 when FILE was already up to date.
write_if_changed() {
	local f=$1 mode=${2:-0644} tmp
	tmp=$(mktemp "$f.XXXXXX")
	cat >"$tmp"
	chmod "$mode" "$tmp"
	if [[ -f $f ]] && cmp -s "$tmp" "$f"; then
		rm -f "$tmp"
		return 1
	fi
	mv -f "$tmp" "$f"
}

# ------------------------------------------------------------------- processes

# alive PID: PID exists and is not a zombie (a daemon whose parent is gone is
# reaped by PID 1, which here may take a while).
alive() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != [ZX] ]]
}

# pid_of NAME prints the pid of our process NAME if it runs. A pid file whose
# process is gone, or is now something else, counts as not running.
pid_of() {
	local f=$run/$1.pid pid match=$1
	[[ $1 != containerd-supervisor ]] || match=_containerd-loop
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
	# (No `producer | grep -q` in this script: under pipefail, grep exiting at
	# the first match can fail the pipeline with SIGPIPE.)
	[[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$match"* ]] || return 1
	printf '%s' "$pid"
}

# start_daemon NAME CMD...: runs CMD detached (own session, no tty, output to
# logs/NAME.log), its pid in run/NAME.pid. A running NAME whose command line
# (run/NAME.cmd) is unchanged is left alone; a changed one is restarted.
start_daemon() {
	local name=$1 pid
	shift
	local want
	want=$(printf '%q ' "$@")
	if pid=$(pid_of "$name"); then
		if [[ -f $run/$name.cmd && $(<"$run/$name.cmd") == "$want" ]]; then
			log "$name: already running (pid $pid)"
			return
		fi
		log "$name: command line changed, restarting"
		stop_daemon "$name" 20
	fi
	printf '%s' "$want" >"$run/$name.cmd"
	rm -f "$run/$name.pid"
	# The child writes its own pid, then execs: the pid file names the daemon
	# itself whether or not setsid had to fork.
	# shellcheck disable=SC2016 # expanded by the child
	setsid bash -c 'echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' "$run/$name.pid" "$@" \
		</dev/null >>"$logs/$name.log" 2>&1 8>&- &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $run/$name.pid ]] && break
		sleep 0.1
	done
	pid=$(pid_of "$name") || die "$name did not start; see $logs/$name.log"
	log "$name: started (pid $pid, log $logs/$name.log)"
}

# stop_daemon NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 10).
stop_daemon() {
	local name=$1 secs=${2:-10} pid i
	if ! pid=$(pid_of "$name"); then
		rm -f "$run/$name.pid"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		warn "$name (pid $pid) ignored SIGTERM for ${secs} s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
	fi
	rm -f "$run/$name.pid"
	log "$name: stopped"
}

# pids_by_exe PATH prints the pids of processes running the binary PATH.
not_alive() { ! alive "$1"; }

pids_by_exe() {
	local p exe
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		[[ $exe == "$1" || $exe == "$1 (deleted)" ]] || continue
		alive "${p#/proc/}" && printf '%s\n' "${p#/proc/}"
	done
	return 0
}

# ------------------------------------------------------- containerd supervisor

# The supervisor loop (run as `cluster.sh _containerd-loop`, detached by up):
# runs containerd, restarts it whenever it exits, and exits itself on SIGTERM
# after stopping containerd. Pid files: run/containerd-supervisor.pid (this
# loop) and run/containerd.pid (the current containerd).
containerd_loop() {
	local child='' stopping='' rc started delay=1
	trap 'stopping=1; if [[ -n $child ]]; then kill -TERM "$child" 2>/dev/null || true; fi' TERM INT
	trap '' HUP
	echo $$ >"$run/containerd-supervisor.pid"
	while [[ -z $stopping ]]; do
		started=$SECONDS
		"$bin/containerd" --config "$containerd_config" >>"$logs/containerd.log" 2>&1 &
		child=$!
		echo "$child" >"$run/containerd.pid.tmp"
		mv -f "$run/containerd.pid.tmp" "$run/containerd.pid"
		echo "$(date -Is) supervisor: containerd started (pid $child)"
		# wait returns early when a trapped signal arrives: wait again until
		# the child is really gone.
		while :; do
			rc=0
			wait "$child" || rc=$?
			[[ -e /proc/$child ]] || break
		done
		echo "$(date -Is) supervisor: containerd (pid $child) exited with status $rc"
		[[ -z $stopping ]] || break
		# Restart at once after a clean restart request, back off on crash loops.
		if ((SECONDS - started < 10)); then
			((delay = delay * 2 > 16 ? 16 : delay * 2))
		else
			delay=1
		fi
		echo "$(date -Is) supervisor: restarting containerd in ${delay} s"
		sleep "$delay" &
		wait $! || true
	done
	rm -f "$run/containerd.pid" "$run/containerd-supervisor.pid"
	echo "$(date -Is) supervisor: stopped"
}

start_containerd() {
	local pid
	if pid=$(pid_of containerd-supervisor); then
		log "containerd: supervisor already running (pid $pid)"
	else
		rm -f "$run/containerd.pid"
		setsid bash "$self" _containerd-loop </dev/null >>"$logs/containerd-supervisor.log" 2>&1 8>&- &
		wait_for "containerd: supervisor started" 10 test -s "$run/containerd-supervisor.pid" ||
			die "containerd supervisor did not start; see $logs/containerd-supervisor.log"
	fi
	wait_for "containerd: ready (pid $(cat "$run/containerd.pid" 2>/dev/null), log $logs/containerd.log)" 60 \
		cri info || die "containerd is not answering on $containerd_sock; see $logs/containerd.log"
}

stop_containerd() {
	local pid i
	if pid=$(pid_of containerd-supervisor); then
		kill -TERM "$pid"
		for ((i = 0; i < 300; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	rm -f "$run/containerd-supervisor.pid"
	# A containerd without its loop (loop killed, or started by hand).
	stop_daemon containerd 20
	for pid in $(pids_by_exe "$bin/containerd"); do
		warn "containerd pid $pid without a pid file: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	done
	log "containerd: stopped"
}

# ---------------------------------------------------------------------- PKI

# cert NAME CN O EXT: pki/NAME.{key,crt} signed by the CA, (re)issued when
# missing, when its parameters changed, or when it expires within a day.
cert() {
	local name=$1 cn=$2 o=$3 ext=$4 params subj
	params="cn=$cn o=$o ext=$ext"
	if [[ -f $pki/$name.crt && -f $pki/$name.key && -f $pki/$name.params && $(<"$pki/$name.params") == "$params" ]] &&
		openssl x509 -checkend 86400 -noout -in "$pki/$name.crt" >/dev/null; then
		return
	fi
	subj="/CN=$cn"
	[[ -z $o ]] || subj="/O=$o$subj"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>/dev/null
	chmod 0600 "$pki/$name.key"
	openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr"
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
		-days 3650 -sha256 -out "$pki/$name.crt" \
		-extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n' "$ext") 2>/dev/null
	rm -f "$pki/$name.csr"
	printf '%s' "$params" >"$pki/$name.params"
	log "pki: issued $name ($subj)"
}

make_pki() {
	mkdir -p "$pki"
	chmod 0700 "$pki"
	if [[ ! -f $pki/ca.crt || ! -f $pki/ca.key ]]; then
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key" 2>/dev/null
		openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=eci-local-ca" -days 3650 -sha256 \
			-addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature' \
			-out "$pki/ca.crt"
		# Everything signed by an older CA is void.
		rm -f "$pki"/*.params
		log "pki: new CA"
	fi
	if [[ ! -f $pki/sa.key ]]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
		chmod 0600 "$pki/sa.key"
		openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
		log "pki: new service-account key pair"
	fi
	local client='extendedKeyUsage=clientAuth'
	cert apiserver kube-apiserver "" "extendedKeyUsage=serverAuth
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$node_name,IP:127.0.0.1,IP:$api_vip,IP:$node_ip"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "$client"
	cert admin admin system:masters "$client"
	cert kubelet "system:node:$node_name" system:nodes "$client"
	cert kubelet-serving "$node_name" "" "extendedKeyUsage=serverAuth
subjectAltName=DNS:$node_name,DNS:localhost,IP:$node_ip,IP:127.0.0.1"
	cert controller-manager system:kube-controller-manager "" "$client"
	cert scheduler system:kube-scheduler "" "$client"
	cert kube-proxy system:kube-proxy "" "$client"
}

# kubeconfig FILE CERTNAME: a self-contained kubeconfig (data inlined).
write_kubeconfig() {
	local f=$1 name=$2
	write_if_changed "$f" 0600 <<EOF || true
apiVersion: v1
kind: Config
clusters:
- name: eci-local
  cluster:
    server: https://$node_ip:$api_port
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$pki/$name.crt")
    client-key-data: $(base64 -w0 "$pki/$name.key")
contexts:
- name: eci-local
  context:
    cluster: eci-local
    user: $name
current-context: eci-local
EOF
}

# ------------------------------------------------------------------ configs

# containerd_config_text prints the harness's containerd config (v3).
containerd_config_text() {
	cat <<EOF
$marker
# (the local cluster harness). cluster.sh rewrites it only while it is
# byte-identical to the copy it keeps in $conf/containerd.toml;
# an edited file (eci-node adding its runtime) is left alone. down --purge
# removes it.
version = 3
root = '$containerd_root'
state = '$containerd_state'
# Drop-ins: the way to add a runtime without editing this file.
imports = ['/etc/containerd/conf.d/*.toml']

[grpc]
  address = '$containerd_sock'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    # Images are imported, never pulled (no registry): nothing may remove them.
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$pause_image'

  [plugins.'io.containerd.cri.v1.runtime']
    # Required here: no CAP_SYS_RESOURCE, a negative oom_score_adj fails in runc init.
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$state/bin/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$cni_bin_dir']
      conf_dir = '$cni_conf_dir'
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
EOF
}

# install_containerd_config writes /etc/containerd/config.toml when it does
# not exist, or when it is the harness's own and unedited. Prints "changed"
# when it rewrote a config a running containerd had loaded.
install_containerd_config() {
	local copy=$conf/containerd.toml
	mkdir -p "$(dirname "$containerd_config")"
	if [[ -f $containerd_config && $(head -1 "$containerd_config") != "$marker" ]]; then
		die "$containerd_config exists and was not written by this harness; move it away (the harness writes its own)"
	fi
	if [[ -f $containerd_config && -f $copy ]] && ! cmp -s "$containerd_config" "$copy"; then
		log "containerd: $containerd_config was edited since the harness wrote it (diff against $copy); keeping it"
		return
	fi
	if containerd_config_text | write_if_changed "$containerd_config"; then
		cp "$containerd_config" "$copy"
		log "containerd: wrote $containerd_config (copy: $copy)"
		echo changed >"$run/containerd.config-changed"
	else
		cp "$containerd_config" "$copy"
	fi
}

write_configs() {
	mkdir -p "$conf" "$cni_conf_dir" "$state/bin" "$state/cni/ipam"
	local k
	for k in admin kubelet controller-manager scheduler kube-proxy; do
		write_kubeconfig "$state/$k.kubeconfig" "$k"
	done

	# runc for the default handler: a copy of the repo's pinned runc, replaced
	# by rename so a running runc keeps its inode.
	if ! cmp -s "$bin/runc" "$state/bin/runc"; then
		cp "$bin/runc" "$state/bin/runc.tmp"
		mv -f "$state/bin/runc.tmp" "$state/bin/runc"
		log "runc: installed $state/bin/runc ($("$state/bin/runc" --version | head -1))"
	fi

	write_if_changed "$cni_conf_dir/10-$net_name.conflist" <<EOF || true
{
  "cniVersion": "1.0.0",
  "name": "$net_name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$state/cni/ipam",
        "ranges": [[{"subnet": "$pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}
  ]
}
EOF

	write_if_changed "$conf/kubelet.yaml" <<EOF || true
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$containerd_sock
# Images cannot be pulled back (no registry): image GC never runs.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
# No CAP_SYS_RESOURCE here: a negative oom_score_adj for the kubelet fails.
oomScoreAdj: 0
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 110
EOF

	# kube-proxy exits when this file is rewritten: write_if_changed.
	write_if_changed "$conf/kube-proxy.yaml" <<EOF || true
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
hostnameOverride: $node_name
clusterCIDR: $cluster_cidr
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts only on the node's own address, never on a real interface.
nodePortAddresses: [$node_ip/32]
iptables: {localhostNodePorts: false}
# Leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
	write_if_changed "$state/crictl.yaml" <<EOF || true
runtime-endpoint: unix://$containerd_sock
image-endpoint: unix://$containerd_sock
timeout: 10
EOF
	install_containerd_config
}

# ------------------------------------------------------------------ network

save_sysctls() {
	[[ -f $run/sysctl.orig ]] && return
	local s
	for s in "${sysctls[@]}"; do
		printf '%s=%s\n' "$s" "$(sysctl -n "$s")"
	done >"$run/sysctl.orig.tmp"
	mv -f "$run/sysctl.orig.tmp" "$run/sysctl.orig"
}

restore_sysctls() {
	[[ -f $run/sysctl.orig ]] || return 0
	local line
	while IFS= read -r line; do
		sysctl -q -w "$line" >/dev/null || warn "could not restore $line"
	done <"$run/sysctl.orig"
	rm -f "$run/sysctl.orig"
	log "sysctls restored"
}

# ipt TOOL ARGS...: TOOL (iptables/ip6tables) with the xtables lock.
ipt() { "$1" -w 5 "${@:2}"; }

# ensure_jump TOOL TABLE CHAIN TARGET: first rule of CHAIN jumps to TARGET.
ensure_jump() {
	local tool=$1 table=$2 chain=$3 target=$4
	ipt "$tool" -t "$table" -N "$target" 2>/dev/null || true
	ipt "$tool" -t "$table" -C "$chain" -j "$target" 2>/dev/null ||
		ipt "$tool" -t "$table" -I "$chain" 1 -j "$target"
}

# The egress guard: pod traffic never leaves the machine.
#  - mangle FORWARD (runs before filter FORWARD, where kube-proxy and CNI
#    accept traffic): drop anything from the pods to outside the pod network,
#    and anything still addressed to the service CIDR (DNAT has happened by
#    then, so only untranslated service traffic is left);
#  - ip rule: untranslated traffic from pods to the service CIDR is
#    blackholed at routing, before it could take the default route;
#  - filter OUTPUT: the host's own untranslated service traffic is rejected
#    (nat OUTPUT DNAT runs first) rather than sent to the default gateway;
#  - IPv6: pods have no IPv6 addresses; nothing from or to the bridge is
#    forwarded.
# The host still reaches Services (routing happens before nat OUTPUT, which
# a blackhole route in the main table would break for host processes).
setup_network() {
	save_sysctls
	sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 >/dev/null
	[[ $(ip -4 addr show dev lo) == *" $node_ip/32 "* ]] || ip addr add "$node_ip/32" dev lo
	# containerd bind-mounts each pod's netns under /run/netns. Were that
	# directory to become a mount point only later (the first `ip netns add`
	# makes it a recursive self-bind), the pods' netns mounts would be hidden
	# below it and could never be removed (EBUSY). Do what ip netns does, now.
	if ! findmnt -rn --mountpoint "$netns_dir" >/dev/null; then
		mkdir -p "$netns_dir"
		mount --rbind "$netns_dir" "$netns_dir"
		mount --make-rshared "$netns_dir"
		touch "$run/netns-mount"
		log "network: $netns_dir is now a shared mount point (as ip netns makes it)"
	fi

	# Each chain is replaced in one iptables-restore transaction (a re-run of
	# up never leaves it empty), then jumped to from the top of its hook.
	iptables-restore -w 5 --noflush <<EOF
*mangle
:$guard_chain - [0:0]
-A $guard_chain -s $cluster_cidr ! -d $cluster_cidr -m comment --comment "eci-local: pod egress stays on this machine" -j DROP
-A $guard_chain -d $svc_cidr -m comment --comment "eci-local: untranslated service traffic" -j DROP
COMMIT
*filter
:$output_chain - [0:0]
-A $output_chain -d $svc_cidr -m comment --comment "eci-local: untranslated service traffic" -j REJECT
COMMIT
EOF
	ip6tables-restore -w 5 --noflush <<EOF
*mangle
:$guard_chain - [0:0]
-A $guard_chain -i $bridge -m comment --comment "eci-local: no IPv6 from pods" -j DROP
-A $guard_chain -o $bridge -m comment --comment "eci-local: no IPv6 to pods" -j DROP
COMMIT
EOF
	ensure_jump iptables mangle FORWARD "$guard_chain"
	ensure_jump iptables filter OUTPUT "$output_chain"
	ensure_jump ip6tables mangle FORWARD "$guard_chain"

	[[ $(ip rule show) == *"from $cluster_cidr to $svc_cidr blackhole"* ]] ||
		ip rule add from "$cluster_cidr" to "$svc_cidr" blackhole priority 90
	log "network: node address $node_ip on lo, egress guard ($guard_chain, $output_chain, ip rule blackhole $svc_cidr)"
}

# ------------------------------------------------------------------ images

# build_images writes the pause and busybox image tarballs into images/ when
# they are missing or older than what they are made of.
# kubelet_subids bounds the kubelet's user-namespace ids (hostUsers: false pods) to
# [65536, 2^31), disjoint from eci's pool at [2^31, 2^31+2^30): the kubelet reads a "kubelet"
# user's subordinate ids through getsubids, and otherwise claims every id above 65535.
kubelet_subids() {
	local entry="kubelet:65536:2147418112" f
	getent passwd kubelet >/dev/null ||
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin kubelet ||
		die "cannot create the kubelet user for its subordinate ids"
	for f in /etc/subuid /etc/subgid; do
		touch "$f"
		if ! grep -qxF "$entry" "$f"; then
			sed -i '/^kubelet:/d' "$f"
			echo "$entry" >>"$f"
			log "kubelet: user-namespace ids $entry in $f (kept apart from eci's pool)"
		fi
	done
	command -v getsubids >/dev/null || die "getsubids missing: run test/local/build.sh deps (installs uidmap)"
}

build_images() {
	mkdir -p "$images"
	local t repo
	repo=$(cd "$here/../.." && pwd)
	t=$images/eci-test-pause-1.tar
	if [[ ! -f $t || $bin/mkimage -nt $t ]]; then
		(cd "$repo" && "$bin/mkimage" pause -tag "$pause_image" -o "$t") >/dev/null
		log "images: built $t"
	fi
	t=$images/eci-test-busybox-1.35.tar
	if [[ ! -f $t || /bin/busybox -nt $t || $bin/mkimage -nt $t ]]; then
		[[ -x /bin/busybox ]] || die "/bin/busybox missing: run test/local/build.sh (installs busybox-static)"
		(cd "$repo" && "$bin/mkimage" busybox -tag "$busybox_image" -o "$t") >/dev/null
		log "images: built $t"
	fi
}

# tar_image_names TARBALL prints the image names in an image tarball (docker
# save format: manifest.json RepoTags; OCI layout: index.json annotations),
# normalized the way containerd names them.
tar_image_names() {
	local n
	{
		tar -xOf "$1" manifest.json 2>/dev/null || tar -xOf "$1" ./manifest.json 2>/dev/null || true
		echo
		tar -xOf "$1" index.json 2>/dev/null || tar -xOf "$1" ./index.json 2>/dev/null || true
	} | grep -oE '"RepoTags":\[[^]]*\]|"(io\.containerd\.image\.name|org\.opencontainers\.image\.ref\.name)":"[^"]*"' |
		sed -e 's/^"RepoTags"://' -e 's/^"[^"]*"://' | grep -oE '"[^"]+"' | tr -d '"' |
		while IFS= read -r n; do
			case $n in
			*/*) [[ ${n%%/*} == *[.:]* || ${n%%/*} == localhost ]] || n=docker.io/$n ;;
			*:*) n=docker.io/library/$n ;;
			*) continue ;; # a bare OCI ref.name like "1": not an image name
			esac
			printf '%s\n' "$n"
		done | sort -u
}

# import_images loads every images/*.tar into containerd's k8s.io namespace
# unless that exact tarball was imported already and its images are present.
import_images() {
	local t sum names have n ok out
	mkdir -p "$images/.imported"
	have=$(ctrk images ls -q 2>/dev/null)
	for t in "$images"/*.tar; do
		[[ -f $t ]] || continue
		sum=$(sha256sum "$t" | cut -d' ' -f1)
		names=$images/.imported/$(basename "$t")
		if [[ -f $names && $(head -1 "$names") == "$sum" ]]; then
			ok=1
			while read -r n; do
				grep -qxF "$n" <<<"$have" || ok=
			done < <(tail -n +2 "$names")
			[[ -z $ok ]] || continue
		fi
		out=$(ctrk images import "$t" 2>&1) || die "ctr images import $t failed: $out"
		{
			echo "$sum"
			tar_image_names "$t"
		} >"$names"
		log "images: imported $t ($(tail -n +2 "$names" | paste -sd' ' -))"
	done
}

# ------------------------------------------------------------------ up

preflight() {
	[[ $(id -u) -eq 0 ]] || die "must run as root"
	local b missing=()
	for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd \
		containerd containerd-shim-runc-v2 ctr crictl runc mkimage cni/bridge cni/host-local cni/loopback cni/portmap; do
		[[ -x $bin/$b ]] || missing+=("$b")
	done
	((${#missing[@]} == 0)) || die "not built: ${missing[*]} (in $bin): run test/local/build.sh"
	command -v iptables >/dev/null || die "iptables not installed: run test/local/build.sh"
	command -v openssl >/dev/null || die "openssl not installed: run test/local/build.sh"
	[[ -n $node_name ]] || die "hostname is empty"
	[[ -d /proc/sys/net/bridge ]] || die "no bridge netfilter (br_netfilter) in this kernel"
}

# port_free PORT: nothing listens on 127.0.0.1/NODE_IP/any PORT.
check_port() {
	local name=$1 port=$2
	pid_of "$name" >/dev/null && return
	if [[ -n $(ss -Hltn "sport = :$port") ]]; then
		die "port $port (for $name) is in use: $(ss -Hltnp "sport = :$port" | head -1)"
	fi
}

apiserver_ready() { kc get --raw /readyz; }
# node_ready [SINCE]: the node is Ready, by a heartbeat at or after SINCE
# (RFC 3339, UTC): the Ready condition a node kept from before a down is stale.
node_ready() {
	local r
	r=$(kc get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}') || return 1
	[[ ${r%% *} == True && ! ${r#* } < ${1:-} ]]
}
pod_running() { [[ $(kc get pod "$1" -o jsonpath='{.status.phase}') == Running ]]; }

up() {
	local pid
	preflight
	mkdir -p "$state" "$logs" "$run" "$conf"
	exec 8>"$run/.lock"
	flock -n 8 || die "another cluster.sh up/down is running"
	log "state $state, binaries $bin, node $node_name ($node_ip)"
	check_port etcd "$etcd_port"
	check_port kube-apiserver "$api_port"
	make_pki
	write_configs
	setup_network

	start_daemon etcd "$bin/etcd" --name "$node_name" --data-dir "$state/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
		--initial-cluster "$node_name=http://127.0.0.1:$etcd_peer_port" --listen-metrics-urls "" \
		--quota-backend-bytes 2147483648 --log-level warn
	wait_for "etcd: healthy" 60 curl -fsS "http://127.0.0.1:$etcd_port/health" || die "etcd not healthy; see $logs/etcd.log"

	start_daemon kube-apiserver "$bin/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address "$node_ip" --advertise-address "$node_ip" --secure-port "$api_port" \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" \
		--kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP,Hostname \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--service-cluster-ip-range "$svc_cidr" --allow-privileged=true \
		--enable-aggregator-routing=true --profiling=false --v=1
	wait_for "kube-apiserver: ready" 120 apiserver_ready || die "kube-apiserver not ready; see $logs/kube-apiserver.log"

	start_daemon kube-controller-manager "$bin/kube-controller-manager" \
		--kubeconfig "$state/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$state/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$state/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false \
		--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
		--use-service-account-credentials=true \
		--cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
		--allocate-node-cidrs=true --cluster-cidr "$cluster_cidr" --node-cidr-mask-size 24 \
		--service-cluster-ip-range "$svc_cidr" --profiling=false --v=1
	start_daemon kube-scheduler "$bin/kube-scheduler" \
		--kubeconfig "$state/scheduler.kubeconfig" \
		--authentication-kubeconfig "$state/scheduler.kubeconfig" \
		--authorization-kubeconfig "$state/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1

	if [[ -f $run/containerd.config-changed ]] && pid=$(pid_of containerd); then
		log "containerd: config changed, restarting containerd (pid $pid)"
		kill -TERM "$pid"
		wait_for "containerd: old process exited" 30 not_alive "$pid" || true
	fi
	rm -f "$run/containerd.config-changed"
	start_containerd
	build_images
	import_images

	kubelet_subids
	local since=''
	pid_of kubelet >/dev/null || since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	start_daemon kubelet "$bin/kubelet" --config "$conf/kubelet.yaml" \
		--kubeconfig "$state/kubelet.kubeconfig" \
		--hostname-override "$node_name" --node-ip "$node_ip" --v=1
	start_daemon kube-proxy "$bin/kube-proxy" --config "$conf/kube-proxy.yaml" --v=1
	wait_for "kube-proxy: healthy" 60 curl -fsS http://127.0.0.1:10256/livez || die "kube-proxy not healthy; see $logs/kube-proxy.log"
	wait_for "node $node_name: Ready" 120 node_ready "$since" || die "node $node_name not Ready; see $logs/kubelet.log"

	smoke_test
	log "up in $(now) s"
	echo "KUBECONFIG=$kubeconfig"
}

# vip_check POD: POD reaches the API server through the kubernetes Service.
# (Debian's busybox nc has no -z: send plain HTTP to the TLS port, and look
# for the Go TLS server's answer.)
vip_check() {
	local out
	out=$(kc exec "$1" -- sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $api_vip 443" 2>&1) || true
	[[ $out == *"HTTP request to an HTTPS server"* ]]
}

# smoke_test runs a busybox pod, checks exec and the API server through its
# Service VIP, then deletes the pod.
smoke_test() {
	local pod=eci-local-smoke
	wait_for "serviceaccount default/default exists" 60 kc get serviceaccount default ||
		die "no default service account; see $logs/kube-controller-manager.log"
	kc delete pod "$pod" --ignore-not-found --grace-period 0 --force >/dev/null 2>&1 || true
	kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  labels: {app.kubernetes.io/name: eci-local-smoke}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: busybox
    image: $busybox_image
    imagePullPolicy: Never
    command: [sleep, "3600"]
EOF
	if ! wait_for "smoke pod: Running" 120 pod_running "$pod"; then
		kc describe pod "$pod" | tail -20 >&2
		die "smoke pod did not run; see $logs/kubelet.log and $logs/containerd.log"
	fi
	wait_for "smoke pod: reaches the API server at $api_vip:443 (Service VIP)" 30 vip_check "$pod" ||
		die "smoke pod cannot reach $api_vip:443; see $logs/kube-proxy.log"
	kc delete pod "$pod" --wait=true --timeout=60s >/dev/null
	log "smoke pod: deleted"
}

# ------------------------------------------------------------------ down

# our_chains TOOL TABLE prints the chains that kubelet, kube-proxy, the CNI
# plugins and this harness made in TABLE.
our_chains() {
	ipt "$1" -t "$2" -S 2>/dev/null | sed -n 's/^-N \(\(KUBE\|CNI\|ECI-LOCAL\)-[^ ]*\)$/\1/p'
}

clean_iptables() {
	local tool table chains rules c
	for tool in iptables ip6tables; do
		for table in raw mangle nat filter; do
			chains=$(our_chains "$tool" "$table")
			[[ -n $chains ]] || continue
			# Jumps from the built-in chains, then flush and delete ours.
			rules=$("$tool-save" -t "$table" | grep -E '^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) .*-j (KUBE|CNI|ECI-LOCAL)-' | sed 's/^-A /-D /' || true)
			{
				echo "*$table"
				[[ -z $rules ]] || printf '%s\n' "$rules"
				for c in $chains; do echo "-F $c"; done
				for c in $chains; do echo "-X $c"; done
				echo COMMIT
			} | "$tool-restore" -w 5 --noflush || warn "$tool: could not remove all chains of table $table"
		done
	done
	while [[ $(ip rule show) == *"from $cluster_cidr to $svc_cidr blackhole"* ]]; do
		ip rule del from "$cluster_cidr" to "$svc_cidr" blackhole priority 90 || break
	done
	log "network: iptables chains (KUBE-*, CNI-*, ECI-LOCAL-*) and ip rule removed"
}

# clean_network removes the bridge, its veths, the node address, containerd's
# network namespaces and the /run/netns mount up made. Never fails: down
# carries on and warns.
clean_network() {
	local l n=0
	for l in $(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
		if ip link del "$l" 2>/dev/null; then ((++n)); fi
	done
	if ip link show "$bridge" >/dev/null 2>&1; then
		if ip link del "$bridge"; then
			log "network: removed $bridge and $n veths"
		else
			warn "cannot delete $bridge"
		fi
	fi
	if [[ $(ip -4 addr show dev lo) == *" $node_ip/32 "* ]]; then
		ip addr del "$node_ip/32" dev lo || warn "cannot remove $node_ip from lo"
	fi
	n=0
	for l in "$netns_dir"/cni-*; do
		[[ -e $l ]] || continue
		while findmnt -rn --mountpoint "$l" >/dev/null; do
			umount "$l" 2>/dev/null || umount -l "$l" 2>/dev/null || break
		done
		if rm -f "$l" 2>/dev/null; then
			((++n))
		else
			warn "cannot remove $l: $(grep -F " $l " /proc/self/mountinfo | head -1)"
		fi
	done
	((n == 0)) || log "network: removed $n network namespaces from $netns_dir"
	if [[ -f $run/netns-mount ]]; then
		if [[ $'\n'$(findmnt -rn -o TARGET) == *$'\n'"$netns_dir/"* ]]; then
			log "network: $netns_dir holds other network namespaces: its mount stays"
		else
			umount "$netns_dir" 2>/dev/null || warn "cannot unmount $netns_dir"
		fi
		rm -f "$run/netns-mount"
	fi
}

# umount_under DIR...: unmounts everything mounted at or below each DIR, deepest first.
umount_under() {
	local d m n=0
	for d in "$@"; do
		d=$(realpath -m "$d")
		while IFS= read -r m; do
			[[ -n $m ]] || continue
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "cannot unmount $m"
			((n++)) || true
		done < <(findmnt -rn -o TARGET | sed 's/\\x20/ /g' | awk -v d="$d" 'index($0, d) == 1 && (length($0) == length(d) || substr($0, length(d) + 1, 1) == "/")' | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
	done
	((n == 0)) || log "mounts: unmounted $n under $*"
}

clean_cgroups() {
	local h n=0
	for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $h ]] || continue
		find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		if [[ -d $h ]]; then
			warn "cgroup $h is still there (tasks: $(find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null | paste -sd' ' -))"
		else
			((n++)) || true
		fi
	done
	((n == 0)) || log "cgroups: removed kubepods from $n hierarchies"
}

# kill_pod_processes: anything left in the kubepods cgroups (containers whose
# shim died) is killed, so that the cgroups can go.
kill_pod_processes() {
	local f p n=0
	for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $f ]] || continue
		for p in $(find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
			if kill -KILL "$p" 2>/dev/null; then ((++n)); fi
		done
	done
	((n == 0)) || { warn "killed $n leftover container processes"; sleep 0.5; }
}

down() {
	local purge=${1:-}
	[[ $(id -u) -eq 0 ]] || die "must run as root"
	mkdir -p "$run"
	exec 8>"$run/.lock"
	flock -n 8 || die "another cluster.sh up/down is running"

	stop_daemon kubelet 20
	if [[ -S $containerd_sock ]] && cri info >/dev/null 2>&1; then
		local pods
		pods=$(cri pods -q || true)
		if [[ -n $pods ]]; then
			# shellcheck disable=SC2086
			cri stopp $pods >/dev/null || warn "crictl stopp failed"
			# shellcheck disable=SC2086
			cri rmp -f $pods >/dev/null || warn "crictl rmp failed"
			log "pods: stopped and removed $(wc -w <<<"$pods") via CRI"
		fi
	fi
	stop_containerd
	local p
	for p in $(pids_by_exe "$bin/containerd-shim-runc-v2"); do
		warn "shim pid $p outlived its pods: SIGKILL"
		kill -KILL "$p" 2>/dev/null || true
	done
	kill_pod_processes
	# eci's holders (the /proc emulation and the seccomp-notify supervisor) leave the
	# pod's cgroups on purpose (they outlive eci-node); helm uninstall stops them, but not
	# when eci was never uninstalled.
	for p in $(pgrep -f '^/proc/self/exe (procfs|supervisor) --host-root' || true); do
		kill -TERM "$p" 2>/dev/null || true
	done
	if grep -q ' /run/eci/procfs ' /proc/self/mountinfo; then
		umount -l /run/eci/procfs 2>/dev/null || warn "cannot unmount /run/eci/procfs"
	fi
	stop_daemon kube-proxy
	stop_daemon kube-scheduler
	stop_daemon kube-controller-manager
	stop_daemon kube-apiserver 30
	stop_daemon etcd 30

	clean_iptables
	clean_network
	umount_under "$kubelet_root" "$containerd_state" "$containerd_root"
	clean_cgroups
	# host-local's leases (no pods are left), libcni's cached results.
	rm -rf "${state:?}/cni/ipam"
	rm -f /var/lib/cni/results/"$net_name"-*
	# containerd's NRI socket (containerd is gone).
	rm -f /run/nri/nri.sock
	rmdir /run/nri 2>/dev/null || true
	restore_sysctls
	rm -f "$run"/*.pid "$run"/*.cmd

	if [[ $purge == --purge ]]; then
		if [[ -f $containerd_config && $(head -1 "$containerd_config") == "$marker" ]]; then
			rm -f "$containerd_config"
			rmdir "$(dirname "$containerd_config")" 2>/dev/null || true
			rm -rf "$containerd_root" "$containerd_state" "$kubelet_root"
			log "purge: removed $containerd_config, $containerd_root, $containerd_state, $kubelet_root"
		elif [[ -f $containerd_config ]]; then
			warn "purge: $containerd_config was not written by the harness: kept (and $containerd_root)"
		fi
		rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
		rm -rf "${state:?}"
		log "purge: removed $state"
	fi
	log "down in $(now) s"
}

# ------------------------------------------------------------------ status

status() {
	local name pid any=
	for name in etcd kube-apiserver kube-controller-manager kube-scheduler containerd-supervisor containerd kubelet kube-proxy; do
		if pid=$(pid_of "$name"); then
			printf '%-26s running  pid %-8s %s\n' "$name" "$pid" "$([[ -f $logs/$name.log ]] && echo "$logs/$name.log")"
			any=1
		else
			printf '%-26s stopped\n' "$name"
		fi
	done
	[[ -n $any ]] || return 0
	if kc get --raw /readyz >/dev/null 2>&1; then
		echo
		kc get nodes -o wide 2>/dev/null || true
		echo
		kc get pods -A -o wide 2>/dev/null || true
	fi
	echo
	echo "KUBECONFIG=$kubeconfig"
}

case $cmd in
up) up ;;
down)
	[[ ${2:-} == "" || ${2:-} == --purge ]] || die "usage: $0 down [--purge]"
	down "${2:-}"
	;;
status) status ;;
env)
	echo "export KUBECONFIG=$kubeconfig"
	echo "export CRI_CONFIG_FILE=$state/crictl.yaml"
	echo "export PATH=$bin:\$PATH"
	;;
_containerd-loop) containerd_loop ;;
*)
	echo "usage:" >&2
	sed -n '5,9p' "$self" | sed 's/^#//' >&2
	exit 2
	;;
esac
