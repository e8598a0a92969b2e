// Package nodeagent is eci-node, the DaemonSet that installs eci on its node, keeps it
// there, serves health and metrics, and takes eci off the node when the chart is removed.
package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/eci-dev/eci/nodeagent/hostcheck"
	"github.com/eci-dev/eci/nodeagent/install"
	"github.com/eci-dev/eci/nodeagent/kube"
	"github.com/eci-dev/eci/runtime/config"
)

// State is where the agent is in its life.
type State int32

// The agent's states; the gauge eci_node_state reports the number.
const (
	StateStarting State = iota
	StateInstalling
	StateReady
	StateFailed
	StateUninstalling
	StateUninstalled
)

func (s State) String() string {
	return [...]string{"starting", "installing", "ready", "failed", "uninstalling", "uninstalled"}[s]
}

// Agent runs the node's eci lifecycle.
type Agent struct {
	Installer *install.Installer
	Client    kubernetes.Interface
	Node      kube.Node
	// PodName and PodNamespace identify the agent's own pod (downward API), to find the
	// DaemonSet that owns it.
	PodName, PodNamespace string
	Log                   *slog.Logger
	// RetryInterval is the pause between failed installs, and PollInterval how often the
	// agent looks for an uninstall request.
	RetryInterval, PollInterval time.Duration
	// BeforeUninstall, when set, runs before the uninstall (it stops the policy sync, so
	// the policy files it removes are not written again).
	BeforeUninstall func()
	// Gatherers are more metrics /metrics serves (the supervisor holder's).
	Gatherers []prometheus.Gatherer

	state    atomic.Int32
	registry *prometheus.Registry
	metrics  struct {
		state         prometheus.Gauge
		installs      *prometheus.CounterVec
		uninstalls    *prometheus.CounterVec
		stepDurations *prometheus.HistogramVec
	}
}

func (a *Agent) setState(s State) {
	a.state.Store(int32(s))
	a.metrics.state.Set(float64(s))
	a.Log.Info("state", "state", s.String())
}

// State returns the current state.
func (a *Agent) State() State { return State(a.state.Load()) }

func (a *Agent) initMetrics() {
	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics.state = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eci_node_state",
		Help: "eci-node's state: 0 starting, 1 installing, 2 ready, 3 failed, 4 uninstalling, 5 uninstalled.",
	})
	a.metrics.installs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eci_node_installs_total", Help: "Install attempts on this node, by result.",
	}, []string{"result"})
	a.metrics.uninstalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eci_node_uninstalls_total", Help: "Uninstall attempts on this node, by result.",
	}, []string{"result"})
	a.metrics.stepDurations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "eci_node_operation_duration_seconds", Help: "Duration of install and uninstall.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 12),
	}, []string{"operation"})
	a.registry.MustRegister(a.metrics.state, a.metrics.installs, a.metrics.uninstalls, a.metrics.stepDurations)
}

// Handler serves /healthz (the process is alive), /readyz (eci is installed and serving)
// and /metrics.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s := a.State(); s != StateReady {
			http.Error(w, "not ready: "+s.String(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(append(prometheus.Gatherers{a.registry}, a.Gatherers...), promhttp.HandlerOpts{}))
	return mux
}

// Register adds collectors to the agent's /metrics; call it after Init.
func (a *Agent) Register(cs ...prometheus.Collector) { a.registry.MustRegister(cs...) }

// Init prepares metrics; call it before Handler and Run.
func (a *Agent) Init() {
	a.initMetrics()
	a.setState(StateStarting)
}

// ownerUID returns the uid of the DaemonSet that owns the agent's pod.
func (a *Agent) ownerUID(ctx context.Context) (string, error) {
	pod, err := a.Client.CoreV1().Pods(a.PodNamespace).Get(ctx, a.PodName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading own pod %s/%s: %w", a.PodNamespace, a.PodName, err)
	}
	for _, o := range pod.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return string(o.UID), nil
		}
	}
	return "", fmt.Errorf("pod %s/%s is not owned by a DaemonSet", a.PodNamespace, a.PodName)
}

// uninstallRequested reports whether the node carries an uninstall request from the
// agent's own DaemonSet.
func uninstallRequested(node *corev1.Node, ownerUID string) bool {
	return node.Annotations[kube.AnnotationUninstall] == ownerUID
}

// Run installs eci, retrying until it succeeds, then waits for an uninstall request from
// its own DaemonSet (the chart's pre-delete hook) and uninstalls. When ctx ends (SIGTERM:
// a rolling update or a node drain) it returns without uninstalling.
func (a *Agent) Run(ctx context.Context) error {
	owner, err := a.ownerUID(ctx)
	if err != nil {
		return err
	}
	for {
		node, err := a.Node.Get(ctx)
		if err != nil {
			return err
		}
		if uninstallRequested(node, owner) {
			// The chart is being removed: don't install again.
			break
		}
		if v, ok := node.Annotations[kube.AnnotationUninstall]; ok && v != owner {
			// A request left by an earlier release's DaemonSet.
			if err := a.Node.SetAnnotation(ctx, kube.AnnotationUninstall, ""); err != nil {
				return err
			}
		}
		a.setState(StateInstalling)
		start := time.Now()
		err = a.Installer.Install(ctx)
		a.metrics.stepDurations.WithLabelValues("install").Observe(time.Since(start).Seconds())
		if err == nil {
			a.metrics.installs.WithLabelValues("success").Inc()
			a.setState(StateReady)
			_ = a.Node.Event(ctx, corev1.EventTypeNormal, "EciInstalled", "eci runtime handler installed and live")
			a.warnKubeletOverlap(ctx)
			break
		}
		a.metrics.installs.WithLabelValues("failure").Inc()
		a.setState(StateFailed)
		a.Log.Error("install failed; the node was left as it was", "err", err, "retryIn", a.RetryInterval)
		_ = a.Node.Event(ctx, corev1.EventTypeWarning, "EciInstallFailed", err.Error())
		if !sleep(ctx, a.RetryInterval) {
			return nil
		}
	}
	// Wait for the uninstall request.
	for {
		node, err := a.Node.Get(ctx)
		if err == nil && uninstallRequested(node, owner) {
			break
		}
		if !sleep(ctx, a.PollInterval) {
			return nil
		}
	}
	a.setState(StateUninstalling)
	if a.BeforeUninstall != nil {
		a.BeforeUninstall()
	}
	start := time.Now()
	err = a.Installer.Uninstall(ctx)
	a.metrics.stepDurations.WithLabelValues("uninstall").Observe(time.Since(start).Seconds())
	if err != nil {
		a.metrics.uninstalls.WithLabelValues("failure").Inc()
		a.setState(StateFailed)
		_ = a.Node.Event(ctx, corev1.EventTypeWarning, "EciUninstallFailed", err.Error())
		return fmt.Errorf("uninstall: %w", err)
	}
	a.metrics.uninstalls.WithLabelValues("success").Inc()
	a.setState(StateUninstalled)
	_ = a.Node.Event(ctx, corev1.EventTypeNormal, "EciUninstalled", "eci removed; the CRI config is as it was before install")
	<-ctx.Done()
	return nil
}

// warnKubeletOverlap warns (log and Node Event) when the kubelet's user-namespace ids may
// fall inside eci's pool: hostUsers: false pods could then share host ids with eci pods.
func (a *Agent) warnKubeletOverlap(ctx context.Context) {
	root := a.Installer.Opts.HostRoot
	cfg, err := config.LoadFile(filepath.Join(root, config.DefaultPath))
	if err != nil {
		a.Log.Warn("cannot read eci-runtime's settings on the host", "err", err)
		return
	}
	if msg := hostcheck.KubeletOverlap(root, uint64(cfg.IDPool.Start), uint64(cfg.IDPool.Size)); msg != "" {
		a.Log.Warn("kubelet id range", "problem", msg)
		_ = a.Node.Event(ctx, corev1.EventTypeWarning, "EciKubeletRangeOverlap", msg)
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ErrUninstallTimeout is returned by RequestUninstall when nodes did not finish in time.
var ErrUninstallTimeout = errors.New("nodes did not finish uninstalling")
