// Command eci-node is eci's node agent: it installs eci-runtime and the pinned runc on its
// node, registers the eci handler with the CRI, labels the node, serves health and metrics,
// and uninstalls when the chart is removed. Run "eci-node --help".
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/eci-dev/eci/nodeagent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := nodeagent.Main(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "eci-node:", err)
		os.Exit(1)
	}
}
