// Command eci-controller is eci's cluster controller: it checks IsolationPolicy
// objects for what the API server cannot (equal priorities over the same pods)
// and rolls up the per-node IsolationPolicyNodeStatus objects that eci-node
// writes into each policy's Valid and Ready conditions. Run "eci-controller --help".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/eci-dev/eci/controllers"
)

func main() {
	fs := flag.NewFlagSet("eci-controller", flag.ExitOnError)
	var o controllers.Options
	o.BindFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: eci-controller [flags]

eci-controller sets the Valid and Ready conditions of every IsolationPolicy:
Valid is False when another policy with the same priority may select the same
pods and wins the tie by name; Ready is True once every node labelled
eci.dev/runtime=ready reports, in an IsolationPolicyNodeStatus, that it applied
the policy's current generation. It runs in the cluster (in-cluster config) or
against $KUBECONFIG.

Flags:
`)
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := controllers.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "eci-controller:", err)
		os.Exit(1)
	}
}
