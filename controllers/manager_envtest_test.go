package controllers_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/controllers"
	"github.com/eci-dev/eci/internal/envtestutil"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body), nil
}

// TestRunServesProbesMetricsAndLeadership runs the controller as the binary
// does: with leader election, health probes and metrics.
func TestRunServesProbesMetricsAndLeadership(t *testing.T) {
	cfg := envtestutil.Start(t, filepath.Join("..", "config", "crd", "bases"))
	metricsAddr, healthAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- controllers.Run(ctx, controllers.Options{
			Config:                  cfg,
			MetricsBindAddress:      metricsAddr,
			HealthProbeBindAddress:  healthAddr,
			LeaderElect:             true,
			LeaderElectionNamespace: "default",
			LeaderElectionID:        "eci-controller.eci.dev",
			SkipNameValidation:      true,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	scheme, err := controllers.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "metrics"}}); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, 30*time.Second, func() error { _, err := get("http://" + healthAddr + path); return err })
	}
	eventually(t, 30*time.Second, func() error {
		var l coordinationv1.Lease
		if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "eci-controller.eci.dev"}, &l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("lease default/eci-controller.eci.dev has no holder")
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		body, err := get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{
			`eci_controller_policies{condition="Valid",status="True"} 1`,
			`eci_controller_policies{condition="Ready",status="False"} 1`,
			`eci_controller_reconcile_duration_seconds_count{result="success"}`,
			`controller_runtime_reconcile_time_seconds`,
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics has no %s", want)
			}
		}
		return nil
	})
}
