package runtime

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	goruntime "runtime"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
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
// namespace mounted at nsPath. A namespace belongs to an OS thread, so a
// goroutine of its own locks a thread, enters the namespace, dials (the
// socket keeps the namespace it was created in), and goes back. Should
// going back fail, the thread stays locked and Go ends it with the
// goroutine, so no other goroutine ever runs in the wrong namespace.
func dialInNetNS(ctx context.Context, nsPath, address string) (net.Conn, error) {
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	defer target.Close()
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1) // the goroutine never blocks on its send
	go func() {
		goruntime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			goruntime.UnlockOSThread()
			done <- result{err: fmt.Errorf("open the current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter network namespace %s: %w", nsPath, err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", address)
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			// The thread stays locked and dies with this goroutine.
			if conn != nil {
				conn.Close()
			}
			done <- result{err: fmt.Errorf("return to the agent's network namespace: %w", rerr)}
			return
		}
		goruntime.UnlockOSThread()
		done <- result{conn: conn, err: err}
	}()
	res := <-done
	return res.conn, res.err
}
