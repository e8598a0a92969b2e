// Package kube is eci-node's view of its own Node object: labels, annotations, the runtime
// handlers the kubelet reports, and Events.
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Label and annotation keys eci puts on nodes.
const (
	// LabelRuntime is "ready" when the node serves the eci handler; the RuntimeClass
	// selects on it. It is "installing" during install and absent otherwise.
	LabelRuntime = "eci.dev/runtime"
	// AnnotationUninstall asks the node's agent to uninstall; its value is the uid of the
	// DaemonSet being removed, so a later install of a new DaemonSet is not blocked by it.
	AnnotationUninstall = "eci.dev/uninstall"
)

// Node is one Node object.
type Node struct {
	Client kubernetes.Interface
	Name   string
}

func (n Node) patch(ctx context.Context, field, key string, value *string) error {
	patch := map[string]any{"metadata": map[string]any{field: map[string]any{key: value}}}
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := n.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("node %s: setting %s %s: %w", n.Name, field, key, err)
	}
	return nil
}

// SetLabel sets a label; an empty value removes it.
func (n Node) SetLabel(ctx context.Context, key, value string) error {
	if value == "" {
		return n.patch(ctx, "labels", key, nil)
	}
	return n.patch(ctx, "labels", key, &value)
}

// SetAnnotation sets an annotation; an empty value removes it.
func (n Node) SetAnnotation(ctx context.Context, key, value string) error {
	if value == "" {
		return n.patch(ctx, "annotations", key, nil)
	}
	return n.patch(ctx, "annotations", key, &value)
}

// Get returns the Node.
func (n Node) Get(ctx context.Context) (*corev1.Node, error) {
	node, err := n.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return node, nil
}

// HandlerReported reports whether the kubelet lists handler in the Node's
// status.runtimeHandlers, and whether it says the handler supports user namespaces.
func HandlerReported(node *corev1.Node, handler string) (reported, userns bool) {
	for _, h := range node.Status.RuntimeHandlers {
		if h.Name == handler {
			return true, h.Features != nil && h.Features.UserNamespaces != nil && *h.Features.UserNamespaces
		}
	}
	return false, false
}

// Event records an Event on the Node, as the kubelet does (involvedObject uid = node name).
func (n Node) Event(ctx context.Context, eventType, reason, message string) error {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: n.Name + ".eci.", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: n.Name, UID: types.UID(n.Name), APIVersion: "v1"},
		Reason:         reason, Message: message, Type: eventType,
		Source:         corev1.EventSource{Component: "eci-node", Host: n.Name},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	_, err := n.Client.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{})
	return err
}
