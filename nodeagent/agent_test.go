package nodeagent

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/nodeagent/kube"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestHealthReadinessMetrics(t *testing.T) {
	a := &Agent{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a.Init()
	h := a.Handler()
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Errorf("/readyz before install = %d %q", code, body)
	}
	a.setState(StateReady)
	a.metrics.installs.WithLabelValues("success").Inc()
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready = %d", code)
	}
	_, metrics := get(t, h, "/metrics")
	for _, want := range []string{"eci_node_state 2", `eci_node_installs_total{result="success"} 1`, "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestUninstallRequested(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{kube.AnnotationUninstall: "uid-1"}}}
	if !uninstallRequested(node, "uid-1") {
		t.Error("request from the agent's own DaemonSet not seen")
	}
	if uninstallRequested(node, "uid-2") {
		t.Error("a stale request from an earlier DaemonSet counted")
	}
	if uninstallRequested(&corev1.Node{}, "uid-1") {
		t.Error("no annotation counted as a request")
	}
}
