// Package envtestutil starts a real kube-apiserver and etcd (controller-runtime's envtest)
// for tests, from the binaries $KUBEBUILDER_ASSETS names (make test-envtest points it at the
// local cluster's build). Without them a test skips, unless ECI_TEST_ENVTEST=1 asked for the
// lane: then it fails.
package envtestutil

import (
	"os"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Start starts the API server with the CRDs in crdDir installed, stops it when the test
// ends, and returns its config.
func Start(tb testing.TB, crdDir string) *rest.Config {
	tb.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("ECI_TEST_ENVTEST") == "1" {
			tb.Fatal("ECI_TEST_ENVTEST=1 but KUBEBUILDER_ASSETS is unset: point it at a directory holding kube-apiserver and etcd (e.g. /var/cache/eci/local/bin)")
		}
		tb.Skip("KUBEBUILDER_ASSETS is unset: skipping the tests against a real kube-apiserver (set it to a directory holding kube-apiserver and etcd, e.g. /var/cache/eci/local/bin)")
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := te.Start()
	if err != nil {
		tb.Fatalf("starting kube-apiserver and etcd from %s: %v", assets, err)
	}
	tb.Cleanup(func() {
		if err := te.Stop(); err != nil {
			tb.Errorf("stopping envtest: %v", err)
		}
	})
	return cfg
}
