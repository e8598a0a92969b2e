// Package e2e runs eci's end-to-end suite against a real cluster with the chart installed:
// the local single-node harness here (make e2e), or kind where Docker exists
// (test/kind/run.sh). It runs when ECI_E2E=1; then a missing cluster is a failure.
//
// Environment:
//
//	KUBECONFIG                   the cluster (required)
//	ECI_E2E_IMAGE                test image (default localhost/eci-test/busybox:1.35, pull policy Never)
//	ECI_E2E_HELM                 helm binary (default: helm on PATH)
//	ECI_E2E_KUBECTL              kubectl binary (default: kubectl on PATH), for kubectl explain
//	ECI_E2E_HELM_ARGS            extra args for helm install (the local harness's image and restart settings)
//	ECI_E2E_CONTAINERD_CONFIG    host path of containerd's config, when the test runs on the node
//	ECI_E2E_CONTAINERD_PIDFILE   host pid file of a supervised containerd, to restart it
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
)

var (
	testenv    env.Environment
	skipReason string
	namespace  = fmt.Sprintf("eci-e2e-%d", os.Getpid())
)

const (
	releaseName      = "eci"
	releaseNamespace = "eci-system"
)

func TestMain(m *testing.M) {
	if os.Getenv("ECI_E2E") != "1" {
		skipReason = "e2e lane not requested (ECI_E2E=1 with KUBECONFIG; make e2e sets both)"
		os.Exit(m.Run())
	}
	kc := os.Getenv("KUBECONFIG")
	if kc == "" {
		fmt.Fprintln(os.Stderr, "e2e: ECI_E2E=1 but KUBECONFIG is not set")
		os.Exit(1)
	}
	testenv = env.NewWithConfig(envconf.NewWithKubeConfig(kc).WithNamespace(namespace))
	testenv.Setup(func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
		return ctx, cfg.Client().Resources().Create(ctx, ns)
	})
	testenv.Finish(func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
		return ctx, cfg.Client().Resources().Delete(ctx, ns)
	})
	os.Exit(testenv.Run(m))
}

func requireE2E(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}
