package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// scaleScript reads /proc/meminfo every second until $END (epoch seconds, the same for all
// pods, so that their windows overlap however long the execs take to start) and reports
// any MemTotal that is not $WANT, with the reading window's start and end.
const scaleScript = `start=$(date +%s); end=$END; n=0; bad=0
while [ $(date +%s) -lt $end ]; do
  t=$(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2)
  if [ "$t" != "$WANT" ]; then bad=$((bad+1)); echo "mismatch: $t"; fi
  n=$((n+1)); sleep 1
done
f=$(free | grep Mem: | tr -s ' ' | cut -d' ' -f2)
[ "$f" = "$WANT" ] || echo "free mismatch: $f"
echo "window $start $(date +%s) reads $n bad $bad"`

// 100 eci pods, each with its own memory limit, read their emulated /proc/meminfo at the
// same time: the pods start and wait, then the test runs the reading loop in all of them
// at once (kubectl exec). Every read shows the reader's own limit, never another pod's.
// Slow (100 pods on the node): only with ECI_E2E_SCALE=1 (make e2e-scale);
// ECI_E2E_SCALE_PODS changes the count.
func TestProcEmulationAtScale(t *testing.T) {
	requireE2E(t)
	if os.Getenv("ECI_E2E_SCALE") != "1" {
		t.Skip("the 100-pod lane: set ECI_E2E_SCALE=1 (make e2e-scale)")
	}
	n := 100
	if v, err := strconv.Atoi(os.Getenv("ECI_E2E_SCALE_PODS")); err == nil && v > 0 {
		n = v
	}
	f := features.New("/proc emulation at scale").
		Assess(fmt.Sprintf("%d pods read their own numbers at once", n), func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			// Every pod reads until the same moment, this long after the execs are sent.
			const secs = 100
			want := func(i int) int { return (64 + i) * 1024 } // kB
			name := func(i int) string { return fmt.Sprintf("scale-%d", i) }
			start := time.Now()
			var wg sync.WaitGroup
			sem := make(chan struct{}, 8)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					// A memory limit only: a CPU limit would also request CPU, and 100 pods
					// would not fit on a 2-core node.
					p := pod(name(i), "eci", "sleep 3600", func(p *corev1.Pod) {
						p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(fmt.Sprintf("%dMi", 64+i))}
					})
					p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "WANT", Value: strconv.Itoa(want(i))}}
					createPod(ctx, t, cs, p)
				}()
			}
			wg.Wait()
			err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 15*time.Minute, true, func(ctx context.Context) (bool, error) {
				pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, nil
				}
				up := 0
				for _, p := range pods.Items {
					if strings.HasPrefix(p.Name, "scale-") && p.Status.Phase == corev1.PodRunning {
						up++
					}
				}
				return up == n, nil
			})
			if err != nil {
				t.Fatalf("the %d pods did not all start: %v", n, err)
			}
			t.Logf("%d pods running after %s; reading in all of them at once, until %d s from now", n, time.Since(start).Round(time.Second), secs)
			end := strconv.FormatInt(time.Now().Add(secs*time.Second).Unix(), 10)

			outs := make([]string, n)
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var stdout, stderr bytes.Buffer
					errs[i] = cfg.Client().Resources().ExecInPod(ctx, namespace, name(i), "main", []string{"sh", "-c", "END=" + end + "; " + scaleScript}, &stdout, &stderr)
					outs[i] = stdout.String() + stderr.String()
				}()
			}
			wg.Wait()
			latestStart, earliestEnd := int64(0), int64(1<<62)
			reads := 0
			for i := range n {
				logs := strings.TrimSpace(outs[i])
				var first, last int64
				var k, bad int
				tail := logs[strings.LastIndexByte(logs, '\n')+1:]
				if _, err := fmt.Sscanf(tail, "window %d %d reads %d bad %d", &first, &last, &k, &bad); errs[i] != nil || err != nil || bad != 0 || strings.Contains(logs, "mismatch") {
					t.Errorf("%s (limit %d kB): %v\n%s", name(i), want(i), errs[i], logs)
					continue
				}
				reads += k
				latestStart, earliestEnd = max(latestStart, first), min(earliestEnd, last)
			}
			if latestStart >= earliestEnd {
				t.Errorf("the pods' reading windows did not overlap (last start %d, first end %d): not concurrent", latestStart, earliestEnd)
			}
			t.Logf("%d pods, %d reads, each its own MemTotal (and free); all %d reading together for %d s", n, reads, n, earliestEnd-latestStart)
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
