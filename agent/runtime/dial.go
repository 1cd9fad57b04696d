package runtime

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/containercodes/cc/internal/netns"
)

// Dial opens a TCP connection to address, an "ip:port" (no host names),
// from inside the network namespace of container id: "127.0.0.1:8080"
// reaches a server listening on the container's loopback, whatever its
// network mode.
func (r *Runtime) Dial(ctx context.Context, id, address string) (net.Conn, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddrPort(address); err != nil {
		return nil, fmt.Errorf("runtime: dial %s in %s: want ip:port: %w", address, id, err)
	}
	nctx := r.withNS(ctx)
	c, err := r.client.LoadContainer(nctx, id)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("runtime: dial %s in %s: %w", address, id, ErrNotRunning)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: dial %s in %s: %w", address, id, err)
	}
	info, err := c.Info(nctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return nil, fmt.Errorf("runtime: dial %s in %s: %w", address, id, err)
	}
	path := info.Labels[LabelNetNS]
	switch {
	case path == "" && info.Labels[LabelNetwork] == networkNone:
		// runc made its namespace (setupNetwork): the task's.
		task, err := c.Task(nctx, nil)
		if err != nil {
			return nil, fmt.Errorf("runtime: dial %s in %s: %w", address, id, ErrNotRunning)
		}
		path = fmt.Sprintf("/proc/%d/ns/net", task.Pid())
	case path == "":
		path = r.netnsPath(id) // an agent before the label
	}
	conn, err := dialInNetNS(ctx, path, address)
	if err != nil {
		return nil, fmt.Errorf("runtime: dial %s in %s: %w", address, id, err)
	}
	return conn, nil
}

// dialInNetNS dials address over TCP with a socket created in the network
// namespace mounted at nsPath (the socket keeps its namespace).
func dialInNetNS(ctx context.Context, nsPath, address string) (net.Conn, error) {
	var conn net.Conn
	err := netns.Do(nsPath, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", address)
		return err
	})
	if err != nil && conn != nil {
		conn.Close() // dialed, but the thread could not go back
		conn = nil
	}
	return conn, err
}
