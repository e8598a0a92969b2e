package nodeagent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/eci-dev/eci/nodeagent/kube"
)

func TestRequestUninstall(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "eci-node", Namespace: "eci-system", UID: "ds-uid"}}
	ready := func(name string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{kube.LabelRuntime: "ready"}}}
	}
	client := fake.NewClientset(ds, ready("a"), ready("b"), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "no-eci"}})
	ctx := context.Background()

	// Two agents that uninstall once asked by their own DaemonSet.
	for _, name := range []string{"a", "b"} {
		go func() {
			_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
				n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				if err != nil || n.Annotations[kube.AnnotationUninstall] != "ds-uid" {
					return false, nil
				}
				return true, kube.Node{Client: client, Name: name}.SetLabel(ctx, kube.LabelRuntime, "")
			})
		}()
	}
	if err := RequestUninstall(ctx, client, "eci-system", "eci-node", 20*time.Second, log); err != nil {
		t.Fatal(err)
	}
	if n, _ := client.CoreV1().Nodes().Get(ctx, "no-eci", metav1.GetOptions{}); n.Annotations[kube.AnnotationUninstall] != "" {
		t.Error("a node without eci was asked to uninstall")
	}

	// A node whose agent never answers is named in the error.
	stuck := fake.NewClientset(ds, ready("stuck"))
	err := RequestUninstall(ctx, stuck, "eci-system", "eci-node", 100*time.Millisecond, log)
	if !errors.Is(err, ErrUninstallTimeout) || !strings.Contains(err.Error(), "stuck=ready") {
		t.Fatalf("err = %v, want a timeout naming node stuck", err)
	}
	if err := RequestUninstall(ctx, stuck, "eci-system", "missing", time.Second, log); err == nil || !strings.Contains(err.Error(), "eci-system/missing") {
		t.Fatalf("missing DaemonSet: err = %v", err)
	}
}
