//go:build linux

package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// BenchmarkPodStartup measures pod create → Running for pods on the eci RuntimeClass and
// the same pods on the default (runc) handler, interleaved, one pod at a time. It needs a
// cluster with eci installed (KUBECONFIG; make up) and the test image on the node.
// Run: KUBECONFIG=... go test -run '^$' -bench PodStartup -benchtime 20x ./bench/
func BenchmarkPodStartup(b *testing.B) {
	kc := os.Getenv("KUBECONFIG")
	if kc == "" {
		b.Skip("KUBECONFIG unset: run make up first and export the KUBECONFIG it prints")
	}
	if b.N == 1 {
		return // go test's probe run
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		b.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	image := os.Getenv("ECI_E2E_IMAGE")
	if image == "" {
		image = "localhost/eci-test/busybox:1.35"
	}
	ctx := context.Background()
	ns := fmt.Sprintf("eci-bench-%d", os.Getpid())
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	defer cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})

	startOne := func(name, runtimeClass string) time.Duration {
		zero := int64(0)
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: &zero,
				Containers:                    []corev1.Container{{Name: "main", Image: image, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"}}},
			},
		}
		if runtimeClass != "" {
			p.Spec.RuntimeClassName = &runtimeClass
		}
		start := time.Now()
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			got, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && got.Status.Phase == corev1.PodRunning, nil
		})
		if err != nil {
			b.Fatalf("pod %s not Running: %v", name, err)
		}
		d := time.Since(start)
		_ = cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		return d
	}
	var eci, runc []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runc = append(runc, startOne(fmt.Sprintf("runc-%d", i), ""))
		eci = append(eci, startOne(fmt.Sprintf("eci-%d", i), "eci"))
	}
	b.StopTimer()
	med := func(ds []time.Duration) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[len(s)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(med(runc), "runc-median-ms")
	b.ReportMetric(med(eci), "eci-median-ms")
	b.ReportMetric(med(eci)/med(runc), "eci/runc-median")
	b.Logf("pod create → Running, %d pods each, interleaved: runc median %.0f ms, eci median %.0f ms, ratio %.3f", b.N, med(runc), med(eci), med(eci)/med(runc))
}
