package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		left, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRuntime})
		if err == nil {
			if len(left.Items) == 0 {
				log.Info("every node uninstalled", "nodes", len(nodes.Items))
				return nil
			}
			var names []string
			for _, n := range left.Items {
				names = append(names, n.Name+"="+n.Labels[kube.LabelRuntime])
			}
			sort.Strings(names)
			log.Info("waiting for nodes to uninstall", "nodes", strings.Join(names, ","))
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w within %s: %s (see eci-node's logs and the nodes' events)", ErrUninstallTimeout, timeout, strings.Join(names, ", "))
			case <-t.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w within %s: %v", ErrUninstallTimeout, timeout, err)
		case <-t.C:
		}
	}
}
