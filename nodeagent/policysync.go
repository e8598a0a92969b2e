package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eci-dev/eci/nodeagent/policy"
	"github.com/eci-dev/eci/runtime/config"
)

// newPolicySyncer prepares the IsolationPolicy sync for this node: eci-runtime's settings
// on the host say where its run dir is and how large the id pool is.
func newPolicySyncer(cfg *rest.Config, kube kubernetes.Interface, node, hostRoot string, log *slog.Logger) (*policy.Syncer, error) {
	settingsPath := filepath.Join(hostRoot, config.DefaultPath)
	rc, err := config.LoadFile(settingsPath)
	if err != nil {
		return nil, fmt.Errorf("eci-runtime's settings on the host: %w", err)
	}
	return &policy.Syncer{
		Kube: kube, NodeName: node, RunDir: filepath.Join(hostRoot, rc.RunDir),
		Node: policy.Node{PoolSize: rc.IDPool.Size, IDsPerPod: rc.IDsPerPod, ExtraProtected: rc.ExtraProtectedPaths},
		Log:  log.With("component", "policy"),
	}, nil
}

// runPolicySync runs the sync until ctx ends, starting it afresh (with a new watch) after
// an error. While it is down, eci-runtime gives new pods the strict policy.
func runPolicySync(ctx context.Context, cfg *rest.Config, s *policy.Syncer) {
	for ctx.Err() == nil {
		err := func() error {
			scheme, err := policy.Scheme()
			if err != nil {
				return err
			}
			opts := policy.NewCacheOptions(s.NodeName)
			opts.Scheme = scheme
			c, err := cache.New(cfg, opts)
			if err != nil {
				return err
			}
			cl, err := client.New(cfg, client.Options{Scheme: scheme})
			if err != nil {
				return err
			}
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			s.Cache, s.Client = c, cl
			return s.Run(runCtx)
		}()
		if err != nil {
			s.Log.Error("policy sync stopped; new pods get the strict policy until it is back", "err", err, "retryIn", "10s")
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
	}
}
