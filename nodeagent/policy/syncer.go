package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/controllers"
	"github.com/eci-dev/eci/internal/atomicfile"
	rpolicy "github.com/eci-dev/eci/runtime/policy"
)

// ConditionType is the pod condition that says which policy a running pod started under.
const ConditionType = "eci.dev/IsolationPolicy"

// Syncer keeps the node's policy files in step with the API server.
type Syncer struct {
	// Cache watches policies, namespaces and the node's pods (see NewCache); Client writes
	// node statuses; Kube records Events and patches pod status.
	Cache  cache.Cache
	Client client.Client
	Kube   kubernetes.Interface
	// NodeName is this node; RunDir is eci-runtime's run dir as eci-node sees it (under
	// the host root).
	NodeName string
	RunDir   string
	Node     Node
	Log      *slog.Logger
	// SpoolInterval is how often eci-runtime's reports are read (default 250ms).
	SpoolInterval time.Duration

	poke     chan struct{}
	recorder record.EventRecorder
	written  map[string][]byte   // pod uid -> file content on disk
	statuses map[string]reported // policy name -> what this node last reported
	metrics  syncMetrics
	once     sync.Once
}

// reported is a node status this node wrote: for which policy object (a policy deleted
// and created again under the same name is a new object, whose status must be written
// afresh) and what it said.
type reported struct {
	uid types.UID
	res Result
}

type syncMetrics struct {
	reports  *prometheus.CounterVec
	syncs    *prometheus.CounterVec
	duration prometheus.Histogram
	pods     prometheus.Gauge
	failed   prometheus.Gauge
}

func (s *Syncer) init() {
	s.once.Do(func() {
		s.poke = make(chan struct{}, 1)
		s.written = map[string][]byte{}
		s.statuses = map[string]reported{}
		s.metrics.reports = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eci_policy_reports_total",
			Help: "Reports from eci-runtime by kind (denied, audited, fallback, started), reason, policy and mode.",
		}, []string{"kind", "reason", "policy", "mode"})
		s.metrics.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eci_policy_syncs_total", Help: "Recompilations of the node's policy files, by result.",
		}, []string{"result"})
		s.metrics.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eci_policy_sync_duration_seconds", Help: "Time to recompile and write the node's policy files.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		})
		s.metrics.pods = prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eci_policy_pods", Help: "Pods on this node with a policy file.",
		})
		s.metrics.failed = prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eci_policy_failed", Help: "Policies this node cannot apply (their pods get the strict policy).",
		})
	})
}

// Collectors are the Syncer's metrics.
func (s *Syncer) Collectors() []prometheus.Collector {
	s.init()
	return []prometheus.Collector{s.metrics.reports, s.metrics.syncs, s.metrics.duration, s.metrics.pods, s.metrics.failed}
}

// NewCacheOptions are the cache options the Syncer needs: only this node's pods.
func NewCacheOptions(node string) cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Field: fieldsNodeName(node)},
	}}
}

// Run syncs until ctx ends. It starts the cache itself.
func (s *Syncer) Run(ctx context.Context) error {
	s.init()
	if s.SpoolInterval == 0 {
		s.SpoolInterval = 250 * time.Millisecond
	}
	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.Kube.CoreV1().Events("")})
	defer bc.Shutdown()
	s.recorder = bc.NewRecorder(clientgoScheme(), corev1.EventSource{Component: "eci-node", Host: s.NodeName})

	for _, obj := range []client.Object{&v1.IsolationPolicy{}, &corev1.Namespace{}, &corev1.Pod{}} {
		inf, err := s.Cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.trigger() },
			UpdateFunc: func(any, any) { s.trigger() },
			DeleteFunc: func(any) { s.trigger() },
		}); err != nil {
			return err
		}
	}
	cacheErr := make(chan error, 1)
	go func() { cacheErr <- s.Cache.Start(ctx) }()
	if !s.Cache.WaitForCacheSync(ctx) {
		select {
		case err := <-cacheErr:
			return fmt.Errorf("policy watch: %w", err)
		default:
			return ctx.Err()
		}
	}
	s.Log.Info("policy sync started", "node", s.NodeName, "runDir", s.RunDir)
	s.loadWritten()
	s.trigger()
	spool := time.NewTicker(s.SpoolInterval)
	defer spool.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-cacheErr:
			if err != nil {
				return fmt.Errorf("policy watch: %w", err)
			}
		case <-s.poke:
			start := time.Now()
			if err := s.Sync(ctx); err != nil {
				s.metrics.syncs.WithLabelValues("error").Inc()
				s.Log.Error("policy sync failed; retrying", "err", err)
				retry.Reset(2 * time.Second)
			} else {
				s.metrics.syncs.WithLabelValues("ok").Inc()
			}
			s.metrics.duration.Observe(time.Since(start).Seconds())
		case <-retry.C:
			s.trigger()
		case <-spool.C:
			s.drain(ctx)
		}
	}
}

func (s *Syncer) trigger() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// loadWritten learns which pod files exist from an earlier eci-node, so an unchanged file is
// not rewritten.
func (s *Syncer) loadWritten() {
	dir := filepath.Join(rpolicy.Dir(s.RunDir), "pods")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if uid, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(uid, ".") {
			if data, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				s.written[uid] = data
			}
		}
	}
}

// Sync recompiles every policy and rewrites what changed: the strict file, the pod files
// (removing those of pods gone from the node) and the node's per-policy statuses.
func (s *Syncer) Sync(ctx context.Context) error {
	s.init()
	var policies v1.IsolationPolicyList
	if err := s.Cache.List(ctx, &policies); err != nil {
		return err
	}
	var nss corev1.NamespaceList
	if err := s.Cache.List(ctx, &nss); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := s.Cache.List(ctx, &pods); err != nil {
		return err
	}
	nsLabels := make(map[string]map[string]string, len(nss.Items))
	for _, ns := range nss.Items {
		nsLabels[ns.Name] = ns.Labels
	}
	c := Compile(policies.Items, s.Node)
	if err := os.MkdirAll(filepath.Join(rpolicy.Dir(s.RunDir), "pods"), 0o700); err != nil {
		return err
	}
	strict, err := json.Marshal(c.Strict)
	if err != nil {
		return err
	}
	if err := writeIfChanged(rpolicy.StrictFile(s.RunDir), strict); err != nil {
		return err
	}
	live := map[string]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Spec.NodeName != s.NodeName || pod.UID == "" {
			continue
		}
		live[string(pod.UID)] = true
		data, err := json.Marshal(c.ForPod(pod, nsLabels[pod.Namespace]))
		if err != nil {
			return err
		}
		if bytes.Equal(s.written[string(pod.UID)], data) {
			continue
		}
		if err := atomicfile.Write(rpolicy.PodFile(s.RunDir, string(pod.UID)), data, 0o600, false); err != nil {
			return fmt.Errorf("pod %s/%s: writing its policy file: %w", pod.Namespace, pod.Name, err)
		}
		s.written[string(pod.UID)] = data
	}
	for uid := range s.written {
		if !live[uid] {
			if err := os.Remove(rpolicy.PodFile(s.RunDir, uid)); err != nil && !os.IsNotExist(err) {
				return err
			}
			delete(s.written, uid)
		}
	}
	s.metrics.pods.Set(float64(len(s.written)))
	failed := 0
	for _, r := range c.Results {
		if r.Err != nil {
			failed++
		}
	}
	s.metrics.failed.Set(float64(failed))
	return s.writeStatuses(ctx, policies.Items, c)
}

func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.Write(path, data, 0o600, false)
}

// writeStatuses publishes this node's IsolationPolicyNodeStatus for every policy whose
// generation or result changed since the last write.
func (s *Syncer) writeStatuses(ctx context.Context, policies []v1.IsolationPolicy, c *Compiled) error {
	var errs []error
	for i := range policies {
		p := &policies[i]
		r := c.Results[p.Name]
		if last, ok := s.statuses[p.Name]; ok && last.uid == p.UID && last.res.Generation == r.Generation && errString(last.res.Err) == errString(r.Err) {
			continue
		}
		state, msg := v1.NodeStateApplied, "applied to this node's new pods"
		if r.Err != nil {
			state, msg = v1.NodeStateFailed, r.Err.Error()+"; pods it might govern get the strict policy"
		}
		want, err := controllers.NewNodeStatus(p, s.NodeName, state, msg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var cur v1.IsolationPolicyNodeStatus
		err = s.Client.Get(ctx, types.NamespacedName{Name: want.Name}, &cur)
		switch {
		case apierrors.IsNotFound(err):
			err = s.Client.Create(ctx, want)
		case err == nil:
			cur.OwnerReferences, cur.PolicyName, cur.NodeName = want.OwnerReferences, want.PolicyName, want.NodeName
			cur.ObservedGeneration, cur.State, cur.Message = want.ObservedGeneration, want.State, want.Message
			err = s.Client.Update(ctx, &cur)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("policy %s: writing this node's status: %w", p.Name, err))
			continue
		}
		s.statuses[p.Name] = reported{uid: p.UID, res: r}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d node status writes failed, first: %w", len(errs), errs[0])
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// drain turns eci-runtime's spooled reports into Events, metrics and pod conditions.
func (s *Syncer) drain(ctx context.Context) {
	_, bad, err := rpolicy.Drain(s.RunDir, func(r rpolicy.Report) { s.handle(ctx, r) })
	if err != nil {
		s.Log.Error("reading eci-runtime's reports", "err", err)
	}
	if bad > 0 {
		s.Log.Warn("dropped unreadable reports from eci-runtime", "count", bad)
	}
}

func (s *Syncer) handle(ctx context.Context, r rpolicy.Report) {
	s.metrics.reports.WithLabelValues(r.Kind, r.Reason, r.Policy, string(r.Mode)).Inc()
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: r.Namespace, Name: r.Name, UID: types.UID(r.PodUID)}
	typ := r.Type
	if typ != corev1.EventTypeNormal {
		typ = corev1.EventTypeWarning
	}
	s.recorder.Event(ref, typ, r.Reason, r.Message)
	s.Log.Info("eci-runtime report", "kind", r.Kind, "reason", r.Reason, "pod", r.Namespace+"/"+r.Name, "policy", r.Policy, "generation", r.Generation, "message", r.Message)
	if r.Kind == rpolicy.KindStarted {
		if err := s.setCondition(ctx, r); err != nil {
			s.Log.Warn("setting the pod's policy condition", "pod", r.Namespace+"/"+r.Name, "err", err)
		}
	}
}

// setCondition records on the pod which policy and generation it started under.
func (s *Syncer) setCondition(ctx context.Context, r rpolicy.Report) error {
	reason := "Applied"
	if r.Source != rpolicy.FromPod {
		reason = "Fallback"
	}
	msg := fmt.Sprintf("started under IsolationPolicy %s generation %d, mode %s", r.Policy, r.Generation, r.Mode)
	patch := map[string]any{
		// metadata.uid makes the patch fail for a new pod with the same name.
		"metadata": map[string]any{"uid": r.PodUID},
		"status": map[string]any{"conditions": []map[string]any{{
			"type": ConditionType, "status": "True", "reason": reason, "message": msg,
			"lastTransitionTime": metav1.NewTime(r.Time).UTC().Format(time.RFC3339),
		}}},
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = s.Kube.CoreV1().Pods(r.Namespace).Patch(ctx, r.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{FieldManager: "eci-node"}, "status")
	return err
}
