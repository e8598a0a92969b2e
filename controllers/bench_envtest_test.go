package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/controllers"
)

// BenchmarkReady1000Policies measures how long the controller takes to
// bring 1,000 policies to Ready over 50 simulated nodes: the clock starts
// when the first policy is created and stops when every policy is Ready;
// the 50,000 node statuses are written by 16 workers in between, as 50
// eci-node agents would. Run it once:
//
//	KUBEBUILDER_ASSETS=/var/cache/eci/local/bin go test -run '^$' -bench Ready1000 -benchtime 1x ./controllers/
func BenchmarkReady1000Policies(b *testing.B) {
	const policies, nodeCount, workers = 1000, 50, 16
	e := startEnv(b)
	ctx := context.Background()
	for i := range nodeCount {
		e.createNode(b, fmt.Sprintf("bench-node-%02d", i), true)
	}
	for iter := range b.N {
		b.StopTimer()
		prefix := fmt.Sprintf("bench%d-", iter)
		b.StartTimer()
		start := time.Now()

		created := make([]*v1.IsolationPolicy, policies)
		parallel(b, policies, workers, func(i int) error {
			p := &v1.IsolationPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%sp%04d", prefix, i)},
				// Distinct priorities: no policy conflicts with another.
				Spec: v1.IsolationPolicySpec{Priority: int32(iter*policies + i + 1)},
			}
			created[i] = p
			return e.c.Create(ctx, p)
		})
		parallel(b, policies*nodeCount, workers, func(i int) error {
			s, err := controllers.NewNodeStatus(created[i/nodeCount], fmt.Sprintf("bench-node-%02d", i%nodeCount), v1.NodeStateApplied, "")
			if err != nil {
				return err
			}
			return e.c.Create(ctx, s)
		})
		written := time.Since(start)

		eventually(b, 10*time.Minute, func() error {
			var list v1.IsolationPolicyList
			if err := e.c.List(ctx, &list); err != nil {
				return err
			}
			ready := 0
			for _, p := range list.Items {
				if meta.IsStatusConditionTrue(p.Status.Conditions, controllers.ConditionReady) && p.Status.ObservedGeneration == p.Generation {
					ready++
				}
			}
			if want := (iter + 1) * policies; ready != want {
				return fmt.Errorf("%d of %d policies Ready", ready, want)
			}
			return nil
		})
		total := time.Since(start)
		b.ReportMetric(written.Seconds(), "s-writing-statuses")
		b.ReportMetric(total.Seconds(), "s-until-all-ready")
		b.ReportMetric((total - written).Seconds(), "s-ready-after-last-status")
	}
}

// parallel runs f(0..n-1) on workers goroutines and fails on the first error.
func parallel(b *testing.B, n, workers int, f func(int) error) {
	b.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
loop:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break loop
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		b.Fatal(err)
	}
}
