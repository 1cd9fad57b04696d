package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// attachPoll is how often `run` looks at the container's state while it
// waits for it to start or for its exit to be reported.
const attachPoll = 250 * time.Millisecond

// attachOutput follows the output of a container just created until it
// ends and returns its exit code as an *exitError (none for 0). Ctrl-C
// stops following and leaves the container running.
func attachOutput(c *cli.Context, created *ccv1.Container) error {
	id := created.GetId()
	var code int
	err := callStream(c, false, nil, func(ctx context.Context, cl *Client) error {
		// The logs can be read once the node runs it.
		st, err := waitContainer(ctx, cl, id, func(st *ccv1.ContainerStatus) bool {
			s := st.GetState()
			return s == ccv1.ContainerState_CONTAINER_STATE_RUNNING || s == ccv1.ContainerState_CONTAINER_STATE_EXITED ||
				s == ccv1.ContainerState_CONTAINER_STATE_FAILED
		})
		if err != nil {
			return err
		}
		if st.GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED {
			return &exitError{code: 125, msg: fmt.Sprintf("container %s failed to start: %s", created.GetName(), st.GetError())}
		}
		logs, err := cl.Containers.ContainerLogs(ctx, &ccv1.ContainerLogsRequest{Id: id, Follow: true})
		if err != nil {
			return err
		}
		err = recvAll(logs, func(msg *ccv1.ContainerLogsResponse) error {
			_, err := outputFor(c, msg.GetStream()).Write(msg.GetData())
			return err
		})
		if err != nil {
			return err
		}
		// The output ended with the process; its exit comes with the
		// node's next status report (a container that restarts on its
		// own is followed to its first exit).
		st, err = waitContainer(ctx, cl, id, func(st *ccv1.ContainerStatus) bool {
			s := st.GetState()
			return s == ccv1.ContainerState_CONTAINER_STATE_EXITED || s == ccv1.ContainerState_CONTAINER_STATE_FAILED ||
				st.GetRestartCount() > 0
		})
		if err != nil {
			return err
		}
		if st.GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED {
			return &exitError{code: 125, msg: fmt.Sprintf("container %s failed: %s", created.GetName(), st.GetError())}
		}
		code = int(st.GetExitCode())
		return nil
	})
	var ee *exitError
	if errors.As(err, &ee) {
		return ee
	}
	if err != nil && err.Error() == "interrupted" {
		return fmt.Errorf("interrupted; container %s keeps running (`ccctl logs -f %s`, `ccctl stop %s`)", created.GetName(), created.GetName(), created.GetName())
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// waitContainer polls the container until its state satisfies done, and
// returns its status then.
func waitContainer(ctx context.Context, cl *Client, id string, done func(*ccv1.ContainerStatus) bool) (*ccv1.ContainerStatus, error) {
	t := time.NewTicker(attachPoll)
	defer t.Stop()
	for {
		resp, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: id})
		switch {
		case status.Code(err) == codes.NotFound:
			return nil, fmt.Errorf("container %s was removed", id)
		case err != nil:
			return nil, err
		}
		if st := resp.GetContainer().GetStatus(); done(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func attachCommand() *cli.Command {
	return &cli.Command{
		Name: "attach", Usage: "attach to a running container's main process: its output, and its stdin and terminal when it has them (admin tokens only; audited)",
		ArgsUsage: "ID|NAME",
		Description: "Shows the output from its last line on, passes ccctl's stdin on when the container was\n" +
			"started with -i, and a terminal's size when with -t; ends when the process does and exits\n" +
			"with its code. On a terminal (-t), Ctrl-C goes to the container: end ccctl from another\n" +
			"shell to detach.\n\n" +
			"Examples:\n  ccctl run -d -it --name sh cc-demo -- /bin/busybox sh\n  ccctl attach sh",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("attach needs exactly one container ID or NAME")
			}
			var ctr *ccv1.Container
			err := call(c, func(ctx context.Context, cl *Client) error {
				resp, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: c.Args().First()})
				ctr = resp.GetContainer()
				return err
			})
			if err != nil {
				return err
			}
			return attachMain(c, ctr, 1)
		},
	}
}

// attachMain attaches to the main process of ctr (once it runs) with
// its output from the last tail lines (0: all), stdin and terminal as it
// was created with, and returns its exit code as an *exitError.
func attachMain(c *cli.Context, ctr *ccv1.Container, tail int64) error {
	spec := ctr.GetSpec()
	var code int
	err := callStream(c, false, nil, func(ctx context.Context, cl *Client) error {
		st, err := waitContainer(ctx, cl, ctr.GetId(), func(st *ccv1.ContainerStatus) bool {
			s := st.GetState()
			return s == ccv1.ContainerState_CONTAINER_STATE_RUNNING || s == ccv1.ContainerState_CONTAINER_STATE_EXITED ||
				s == ccv1.ContainerState_CONTAINER_STATE_FAILED
		})
		if err != nil {
			return err
		}
		if st.GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING {
			start := &ccv1.ExecStart{Container: ctr.GetId(), Attach: true, LogsTail: tail, Tty: spec.GetTty(), Stdin: spec.GetStdinOpen()}
			var in io.Reader
			if spec.GetStdinOpen() {
				in = stdin
			}
			if _, err := runExec(ctx, cl, start, in, c.App.Writer, c.App.ErrWriter); err != nil {
				return err
			}
		}
		st, err = waitContainer(ctx, cl, ctr.GetId(), func(st *ccv1.ContainerStatus) bool {
			s := st.GetState()
			return s == ccv1.ContainerState_CONTAINER_STATE_EXITED || s == ccv1.ContainerState_CONTAINER_STATE_FAILED ||
				st.GetRestartCount() > 0
		})
		if err != nil {
			return err
		}
		if st.GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED {
			return &exitError{code: 125, msg: fmt.Sprintf("container %s failed: %s", ctr.GetName(), st.GetError())}
		}
		code = int(st.GetExitCode())
		return nil
	})
	var ee *exitError
	if errors.As(err, &ee) {
		return ee
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
