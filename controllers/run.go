package controllers

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
)

// Options configure Run.
type Options struct {
	// MetricsBindAddress serves /metrics ("0" disables it).
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz ("0" disables it).
	HealthProbeBindAddress string
	// LeaderElect runs the controller only in the replica holding the lease.
	LeaderElect bool
	// LeaderElectionNamespace holds the lease; empty means the pod's own
	// namespace (from its service account).
	LeaderElectionNamespace string
	// LeaderElectionID is the lease's name.
	LeaderElectionID string
	// Config talks to the API server; nil means the in-cluster config or
	// $KUBECONFIG.
	Config *rest.Config
	// SkipNameValidation lets tests run several managers in one process
	// (controller-runtime refuses two controllers of the same name).
	SkipNameValidation bool
}

// BindFlags registers the options' command-line flags on fs, with their
// defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "`address` serving Prometheus metrics at /metrics (eci_controller_* and controller-runtime's); 0 disables it")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "`address` serving the /healthz and /readyz probes; 0 disables them")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "run the controller only in the replica that holds the leader lease, so several replicas can run safely")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "`namespace` of the leader lease; empty means the pod's own namespace")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "eci-controller.eci.dev", "`name` of the leader lease")
}

// Scheme is the scheme the controller's client uses: core types and eci's.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("adding core/v1 to the scheme: %w", err)
	}
	if err := v1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("adding eci.dev/v1alpha1 to the scheme: %w", err)
	}
	return s, nil
}

// NewManager builds the manager with the IsolationPolicy reconciler, health
// probes and metrics.
func NewManager(o Options) (ctrl.Manager, error) {
	cfg := o.Config
	if cfg == nil {
		var err error
		if cfg, err = ctrl.GetConfig(); err != nil {
			return nil, fmt.Errorf("finding the API server (in-cluster config or $KUBECONFIG): %w", err)
		}
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        o.LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// Hand the lease over at shutdown instead of letting it expire,
		// so a rollout does not pause reconciling for the lease duration.
		LeaderElectionReleaseOnCancel: true,
		Controller:                    ctrlconfig.Controller{SkipNameValidation: &o.SkipNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the controller manager: %w", err)
	}
	r := &IsolationPolicyReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorderFor("eci-controller"), //nolint:staticcheck // core/v1 Events, as kubectl describe shows them
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the isolationpolicy controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	return mgr, nil
}

// Run runs the controller until ctx is done.
func Run(ctx context.Context, o Options) error {
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	mgr, err := NewManager(o)
	if err != nil {
		return err
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the controller manager: %w", err)
	}
	return nil
}
