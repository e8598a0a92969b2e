package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/eci-dev/eci/nodeagent/kube"
)

// RequestUninstall is the chart's pre-delete hook: it asks the agent on every node that has
// eci to uninstall (annotating the node with the DaemonSet's uid) and waits until they are
// done, while the agents' RBAC still exists. It names the nodes that did not finish.
func RequestUninstall(ctx context.Context, client kubernetes.Interface, namespace, daemonSet string, timeout time.Duration, log *slog.Logger) error {
	ds, err := client.AppsV1().DaemonSets(namespace).Get(ctx, daemonSet, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading DaemonSet %s/%s: %w", namespace, daemonSet, err)
	}
	uid := string(ds.UID)
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRuntime})
	if err != nil {
		return fmt.Errorf("listing nodes with %s: %w", kube.LabelRuntime, err)
	}
	for _, n := range nodes.Items {
		if err := (kube.Node{Client: client, Name: n.Name}).SetAnnotation(ctx, kube.AnnotationUninstall, uid); err != nil {
			return err
		}
		log.Info("uninstall requested", "node", n.Name)
	}
	var waiting []string
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		left, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRuntime})
		if err != nil {
			lastErr = err
			return false, nil
		}
		waiting = waiting[:0]
		for _, n := range left.Items {
			waiting = append(waiting, n.Name+"="+n.Labels[kube.LabelRuntime])
		}
		if len(waiting) > 0 {
			sort.Strings(waiting)
			log.Info("waiting for nodes to uninstall", "nodes", strings.Join(waiting, ","))
		}
		return len(waiting) == 0, nil
	})
	switch {
	case err == nil:
		log.Info("every node uninstalled", "nodes", len(nodes.Items))
		return nil
	case len(waiting) == 0 && lastErr != nil:
		return fmt.Errorf("%w within %s: %v", ErrUninstallTimeout, timeout, lastErr)
	}
	return fmt.Errorf("%w within %s: %s (see eci-node's logs and the nodes' events)", ErrUninstallTimeout, timeout, strings.Join(waiting, ", "))
}
