package nodeagent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/eci-dev/eci/nodeagent/cri"
	"github.com/eci-dev/eci/nodeagent/criconfig"
	"github.com/eci-dev/eci/nodeagent/install"
	"github.com/eci-dev/eci/nodeagent/kube"
	"github.com/eci-dev/eci/nodeagent/restart"
	"github.com/eci-dev/eci/runtime/config"
)

// Usage is eci-node's --help.
const Usage = `eci-node: eci's node agent (runs as a privileged DaemonSet pod).

Usage:
  eci-node run [flags]                 install eci on this node, keep it there, serve
                                       /healthz /readyz /metrics; uninstall only when the
                                       chart's pre-delete hook asks (a rolling update or a
                                       SIGTERM never uninstalls)
  eci-node uninstall-cluster [flags]   the chart's pre-delete hook: ask every node's agent to
                                       uninstall and wait until all have
  eci-node install|uninstall [flags]   do it once on this node and exit (for debugging)
  eci-node procfs [flags]              serve the /proc and /sys emulation (eci-node run starts
                                       it as a holder process that outlives eci-node restarts)
  eci-node supervisor [flags]          answer eci containers' trapped syscalls (seccomp user
                                       notification); eci-node run starts it as a holder too

Run "eci-node <command> -h" for the flags of each command.
`

// Main runs eci-node with os.Args[1:].
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, Usage)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	switch args[0] {
	case "run", "install", "uninstall":
		return runNode(ctx, args[0], args[1:], stderr)
	case "uninstall-cluster":
		return runUninstallCluster(ctx, args[1:], stderr)
	case "procfs":
		return runProcfs(ctx, args[1:], stderr)
	case "supervisor":
		return runSupervisor(ctx, args[1:], stderr)
	}
	fmt.Fprint(stderr, Usage)
	return fmt.Errorf("unknown command %q", args[0])
}

type nodeFlags struct {
	hostRoot, nodeName, podName, podNamespace, cri, containerdConfig, crioDropInDir string
	criRestart, installDir, artifacts, runcRoot, handler, logLevel, metricsAddr     string
	healthAddr, kubeconfig                                                          string
	handlerTimeout, retryInterval                                                   time.Duration
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cfg.UserAgent = "eci-node"
	return cfg, nil
}

func runNode(ctx context.Context, cmd string, args []string, stderr io.Writer) error {
	var f nodeFlags
	fs := flag.NewFlagSet("eci-node "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.hostRoot, "host-root", "/host", "where the host's / is mounted in this container")
	fs.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (downward API spec.nodeName)")
	fs.StringVar(&f.podName, "pod-name", os.Getenv("POD_NAME"), "this pod's name (downward API), to find its DaemonSet")
	fs.StringVar(&f.podNamespace, "pod-namespace", os.Getenv("POD_NAMESPACE"), "this pod's namespace (downward API)")
	fs.StringVar(&f.cri, "cri", "auto", "CRI to register with: auto, containerd or crio")
	fs.StringVar(&f.containerdConfig, "containerd-config", "/etc/containerd/config.toml", "containerd's main config on the host")
	fs.StringVar(&f.crioDropInDir, "crio-dropin-dir", "/etc/crio/crio.conf.d", "CRI-O's drop-in directory on the host")
	fs.StringVar(&f.criRestart, "cri-restart", "systemd:containerd.service", "how to restart the CRI after a config change: systemd:<unit>, signal:<pid file on the host> or none")
	fs.StringVar(&f.installDir, "install-dir", "/opt/eci/bin", "host directory for eci-runtime and runc")
	fs.StringVar(&f.artifacts, "artifacts", "/opt/eci-artifacts", "directory in this image holding eci-runtime and runc")
	fs.StringVar(&f.runcRoot, "runc-root", "/run/containerd/runc-eci", "runc state root of the eci handler on the host")
	fs.StringVar(&f.handler, "handler", "eci", "runtime handler name (the RuntimeClass's handler)")
	fs.DurationVar(&f.handlerTimeout, "handler-timeout", 2*time.Minute, "how long to wait for the CRI and the kubelet to report the handler")
	fs.DurationVar(&f.retryInterval, "retry-interval", 30*time.Second, "pause between failed install attempts")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (JSON logs on stderr)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":9101", "address for /metrics")
	fs.StringVar(&f.healthAddr, "health-addr", ":9102", "address for /healthz and /readyz")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig (default: in-cluster)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		return err
	}
	if f.nodeName == "" {
		return errors.New("--node-name (or NODE_NAME) is required")
	}
	restarter, err := restart.Parse(f.criRestart, f.hostRoot)
	if err != nil {
		return err
	}
	restCfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	h := criconfig.DefaultHandler()
	h.Name, h.BinaryName, h.RuncRoot = f.handler, strings.TrimSuffix(f.installDir, "/")+"/eci-runtime", f.runcRoot
	if err := h.Validate(); err != nil {
		return err
	}
	node := kube.Node{Client: client, Name: f.nodeName}
	inst := &install.Installer{
		Opts: install.Options{
			HostRoot: f.hostRoot, Artifacts: f.artifacts, InstallDir: f.installDir, RuncRoot: f.runcRoot,
			CRI: f.cri, Handler: f.handler, HandlerTimeout: f.handlerTimeout,
		},
		CRIFor: func(socket string) install.CRI { return cri.Client{Socket: socket} },
		Config: func(name string) (install.CRIConfig, error) {
			return install.FileConfig{HostRoot: f.hostRoot, CRI: name, ContainerdConfig: f.containerdConfig, CRIODropInDir: f.crioDropInDir, Handler: h}, nil
		},
		Restarter: restarter,
		Node:      node,
		Log:       log,
	}
	switch cmd {
	case "install":
		return inst.Install(ctx)
	case "uninstall":
		return inst.Uninstall(ctx)
	}
	if f.podName == "" || f.podNamespace == "" {
		return errors.New("--pod-name and --pod-namespace (or POD_NAME, POD_NAMESPACE) are required")
	}
	agent := &Agent{
		Installer: inst, Client: client, Node: node, PodName: f.podName, PodNamespace: f.podNamespace,
		Log: log, RetryInterval: f.retryInterval, PollInterval: 2 * time.Second,
	}
	agent.Init()
	syncer, err := newPolicySyncer(restCfg, client, f.nodeName, f.hostRoot, log)
	if err != nil {
		return err
	}
	agent.Register(syncer.Collectors()...)
	syncCtx, stopSync := context.WithCancel(ctx)
	syncDone := make(chan struct{})
	go func() { defer close(syncDone); runPolicySync(syncCtx, restCfg, syncer) }()
	ensureProcfs(f.hostRoot, log)
	ensureHolder(f.hostRoot, "supervisor", "seccomp-notify supervisor", supervisorPIDFile, log)
	if rc, err := config.LoadFile(filepath.Join(f.hostRoot, config.DefaultPath)); err == nil {
		agent.Gatherers = append(agent.Gatherers, supervisorGatherer{sock: filepath.Join(f.hostRoot, rc.RunDir, supervisorMetricsSock)})
	}
	agent.BeforeUninstall = func() { stopSync(); <-syncDone }
	errs := make(chan error, 2)
	for _, addr := range uniq(f.metricsAddr, f.healthAddr) {
		srv := &http.Server{Addr: addr, Handler: agent.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { errs <- srv.ListenAndServe() }()
		go func() { <-ctx.Done(); _ = srv.Close() }()
	}
	log.Info("eci-node starting", "node", f.nodeName, "cri", f.cri, "criRestart", restarter.String(), "handler", f.handler)
	go func() { errs <- agent.Run(ctx) }()
	select {
	case err := <-errs:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		<-ctx.Done()
		return nil
	case <-ctx.Done():
		log.Info("eci-node stopping (no uninstall: only the chart's pre-delete hook uninstalls)")
		return nil
	}
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

func runUninstallCluster(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("eci-node uninstall-cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "namespace of the eci-node DaemonSet")
	ds := fs.String("daemonset", "", "name of the eci-node DaemonSet")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for every node")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (default: in-cluster)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *ns == "" || *ds == "" {
		return errors.New("--namespace and --daemonset are required")
	}
	log, _ := newLogger("info", stderr)
	client, err := kubeClient(*kubeconfig)
	if err != nil {
		return err
	}
	return RequestUninstall(ctx, client, *ns, *ds, *timeout, log)
}
