// Package cri asks the node's container runtime, through the CRI, what it is and which
// runtime handlers it serves.
package cri

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Client talks to one CRI socket.
type Client struct {
	Socket string // unix socket path, as the agent sees it (host root prefix included)
}

func (c Client) dial() (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("cri %s: %w", c.Socket, err)
	}
	return conn, nil
}

// Version returns the runtime's name and version ("containerd", "v2.4.2").
func (c Client) Version(ctx context.Context) (name, version string, err error) {
	conn, err := c.dial()
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", "", fmt.Errorf("cri %s: version: %w", c.Socket, err)
	}
	return resp.RuntimeName, resp.RuntimeVersion, nil
}

// Handlers returns the runtime handlers the CRI reports as served, and whether each
// supports user namespaces.
func (c Client) Handlers(ctx context.Context) (map[string]bool, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("cri %s: status: %w", c.Socket, err)
	}
	out := map[string]bool{}
	for _, h := range resp.RuntimeHandlers {
		out[h.Name] = h.Features != nil && h.Features.UserNamespaces
	}
	return out, nil
}
