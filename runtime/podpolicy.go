//go:build linux

package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/runtime/config"
	"github.com/eci-dev/eci/runtime/harden"
	"github.com/eci-dev/eci/runtime/policy"
)

// PolicyWait is how long a sandbox's create waits for eci-node to write the pod's policy
// file (it learns of the pod from the API server at about the time the kubelet does)
// before it uses the node's strict policy instead.
const PolicyWait = 3 * time.Second

// podPolicy finds the policy a container is created under. A pod's containers use the
// policy its sandbox was created under, so a running pod keeps the policy it started with;
// a sandbox (or a standalone container) looks it up (policy.Lookup), and a fallback to a
// stricter policy is reported as an Event on the pod.
func (r *runner) podPolicy(cfg config.Config, pod harden.Pod) (policy.Pod, policy.Source) {
	builtin := harden.BuiltinPolicyFor(cfg.IDsPerPod, cfg.ExtraProtectedPaths)
	if pod.Kind == harden.Container {
		if data, err := os.ReadFile(recordPath(cfg, pod.SandboxID)); err == nil {
			var sb record
			if json.Unmarshal(data, &sb) == nil && sb.Policy != nil && sb.Policy.Policy.Validate() == nil {
				return *sb.Policy, sb.PolicySource
			}
		}
	}
	wait := time.Duration(0)
	if pod.Kind == harden.Sandbox {
		wait = PolicyWait
	}
	res := policy.Lookup(cfg.RunDir, pod.UID, wait, builtin)
	if res.Source != policy.FromPod && pod.Kind != harden.Standalone {
		r.report(cfg, pod, res.Pod.Policy, policy.Report{
			Kind: policy.KindFallback, Type: "Warning", Reason: "EciPolicyFallback",
			Message: fmt.Sprintf("eci used the %s policy %s for %s: %s", res.Source, res.Pod.Policy, pod, res.Why),
		})
	}
	res.Pod.UID, res.Pod.Namespace, res.Pod.Name = pod.UID, pod.Namespace, pod.Name
	return res.Pod, res.Source
}

// checkMounts reports the protected mounts of the container: in Enforce mode the first
// refusal (which fails the create), in Audit mode every mount Enforce would refuse.
func (r *runner) checkMounts(cfg config.Config, spec *specs.Spec, in harden.Inputs, pp policy.Pod) error {
	v, err := harden.MountViolations(spec, in)
	if err != nil || len(v) == 0 {
		return err
	}
	pol := pp.Policy
	if !in.Audit {
		r.report(cfg, in.Pod, pol, policy.Report{
			Kind: policy.KindDenied, Type: "Warning", Reason: "EciMountDenied", What: "mount",
			Message: fmt.Sprintf("container %s: %s", in.Pod.Container, v[0].Error()),
		})
		return v[0]
	}
	for _, d := range v {
		r.report(cfg, in.Pod, pol, policy.Report{
			Kind: policy.KindAudited, Type: "Warning", Reason: "EciMountAudited", What: "mount",
			Message: fmt.Sprintf("container %s: allowed in Audit mode: %s", in.Pod.Container, d.Error()),
		})
	}
	return nil
}

// report spools a report for eci-node; a pod-less container has no one to tell. A report
// that cannot be spooled is logged: it never changes what eci enforces.
func (r *runner) report(cfg config.Config, pod harden.Pod, pol policy.Policy, rep policy.Report) {
	if pod.Kind == harden.Standalone || pod.UID == "" {
		return
	}
	rep.PodUID, rep.Namespace, rep.Name = pod.UID, pod.Namespace, pod.Name
	rep.Policy, rep.Generation, rep.Mode = pol.Name, pol.Generation, pol.Mode
	if err := policy.Spool(cfg.RunDir, rep); err != nil {
		r.log.Warn(fmt.Errorf("%s: reporting %s: %w", pod, rep.Reason, err))
	}
}
