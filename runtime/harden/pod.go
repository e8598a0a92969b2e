package harden

// Kind says what a container is to its pod.
type Kind string

// The kinds of container.
const (
	// Standalone is a container without CRI annotations: it gets its own id range.
	Standalone Kind = "standalone"
	// Sandbox is a pod's sandbox (pause) container: it owns the pod's id range.
	Sandbox Kind = "sandbox"
	// Container is an application container of a pod: it joins the sandbox's user namespace.
	Container Kind = "container"
)

// Pod is a container's identity as the CRI reports it.
type Pod struct {
	Kind      Kind   `json:"kind"`
	SandboxID string `json:"sandboxID,omitempty"`
	UID       string `json:"uid,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Container string `json:"container,omitempty"`
}

// The annotations eci reads. Pod annotations are untrusted: only this allowlist is read,
// and none of them can weaken isolation (they only say which pod a container belongs to).
const (
	annContainerd       = "io.kubernetes.cri.container-type"
	annContainerdSbID   = "io.kubernetes.cri.sandbox-id"
	annContainerdNS     = "io.kubernetes.cri.sandbox-namespace"
	annContainerdName   = "io.kubernetes.cri.sandbox-name"
	annContainerdUID    = "io.kubernetes.cri.sandbox-uid"
	annContainerdCtName = "io.kubernetes.cri.container-name"

	annCRIOType = "io.kubernetes.cri-o.ContainerType"
	annCRIOSbID = "io.kubernetes.cri-o.SandboxID"
	annCRIOName = "io.kubernetes.cri-o.ContainerName"
	annPodNS    = "io.kubernetes.pod.namespace"
	annPodName  = "io.kubernetes.pod.name"
	annPodUID   = "io.kubernetes.pod.uid"
)

// PodFromAnnotations reads a container's pod identity from containerd's or CRI-O's
// annotations. A container with neither is Standalone.
func PodFromAnnotations(containerID string, ann map[string]string) Pod {
	switch {
	case ann[annContainerd] != "":
		p := Pod{
			SandboxID: ann[annContainerdSbID], UID: ann[annContainerdUID],
			Namespace: ann[annContainerdNS], Name: ann[annContainerdName], Container: ann[annContainerdCtName],
		}
		p.Kind = kindOf(ann[annContainerd], containerID, p.SandboxID)
		return p
	case ann[annCRIOType] != "":
		p := Pod{
			SandboxID: ann[annCRIOSbID], UID: ann[annPodUID],
			Namespace: ann[annPodNS], Name: ann[annPodName], Container: ann[annCRIOName],
		}
		p.Kind = kindOf(ann[annCRIOType], containerID, p.SandboxID)
		return p
	}
	return Pod{Kind: Standalone}
}

func kindOf(typ, containerID, sandboxID string) Kind {
	switch {
	case typ == "sandbox":
		return Sandbox
	case typ == "container" && sandboxID != "" && sandboxID != containerID:
		return Container
	}
	// Anything else is treated as a container of its own: it gets its own range.
	return Standalone
}

// RangeKey is the allocator key of the id range a container uses: the pod's sandbox id for
// pod containers, the container's own id otherwise.
func (p Pod) RangeKey(containerID string) string {
	if p.Kind == Container {
		return p.SandboxID
	}
	return containerID
}

// String names the pod for error messages.
func (p Pod) String() string {
	if p.Kind == Standalone {
		return "standalone container"
	}
	return "pod " + p.Namespace + "/" + p.Name
}
