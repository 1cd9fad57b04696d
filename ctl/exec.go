package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// stdin is what exec and run -i read; tests set their own.
var stdin io.Reader = os.Stdin

func execCommand() *cli.Command {
	return &cli.Command{
		Name: "exec", Usage: "run a command in a running container (admin tokens only; recorded in the audit trail)",
		ArgsUsage: "ID|NAME [--] COMMAND [ARG...]",
		Description: "Flags go before the container: everything after it is the command, which is not run\n" +
			"by a shell. ccctl exits with the command's exit code. With -t the command gets a terminal\n" +
			"(when ccctl's stdin is one, it is put in raw mode and window sizes follow); with -i ccctl's\n" +
			"stdin is passed on until it ends.\n\n" +
			"Examples:\n" +
			"  ccctl exec -it box -- /bin/sh\n" +
			"  ccctl exec box -- cat /etc/hostname\n" +
			"  ccctl exec -u nobody -w /tmp -e DEBUG=1 box -- env\n" +
			"  tar -cf - dir | ccctl exec -i box -- tar -xf - -C /tmp",
		OnUsageError:           usageError,
		UseShortOptionHandling: true,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "pass stdin on to the command"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "give the command a terminal"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "run as `USER` (a name known to the image, uid or uid:gid)"},
			&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working `DIR` in the container"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable: `VAR`=VALUE, or VAR alone for its value here; repeatable"},
		},
		Action: execCmd,
	}
}

func execCmd(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 || args[0] == "" {
		return errors.New("exec needs a container ID or NAME and a command, as `ccctl exec box -- /bin/sh`")
	}
	container, command := args[0], args[1:]
	if command[0] == "--" {
		command = command[1:]
	}
	if len(command) == 0 {
		return errors.New("exec: no command after --")
	}
	env, err := parseEnv(c.StringSlice("env"), os.LookupEnv)
	if err != nil {
		return err
	}
	start := &ccv1.ExecStart{
		Container: container, Args: command, Tty: c.Bool("tty"), Stdin: c.Bool("interactive"),
		User: c.String("user"), Workdir: c.String("workdir"), Env: env,
	}
	var code int32
	err = callStream(c, false, nil, func(ctx context.Context, cl *Client) error {
		var in io.Reader
		if start.Stdin {
			in = stdin
		}
		var err error
		code, err = runExec(ctx, cl, start, in, c.App.Writer, c.App.ErrWriter)
		return err
	})
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: int(code)}
	}
	return nil
}

// runExec runs start's command through the API with in (nil: none) as
// its stdin and its output to stdout and stderr, and returns its exit
// code. With a terminal, a stdin that is one is in raw mode meanwhile
// and the window's size follows it.
func runExec(ctx context.Context, cl *Client, start *ccv1.ExecStart, in io.Reader, stdout, stderr io.Writer) (int32, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var restore func()
	var winch chan os.Signal
	termFd := -1
	if start.Tty {
		if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			termFd = int(f.Fd())
		} else if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			termFd = int(f.Fd())
		}
		if termFd >= 0 {
			if w, h, err := term.GetSize(termFd); err == nil {
				start.Size = &ccv1.TerminalSize{Width: uint32(w), Height: uint32(h)}
			}
			winch = make(chan os.Signal, 1)
			notifyResize(winch)
			defer signal.Stop(winch)
		}
	}
	stream, err := cl.Exec.Exec(ctx)
	if err != nil {
		return -1, err
	}
	var sendMu sync.Mutex
	send := func(m *ccv1.ExecRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	if err := send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Start{Start: start}}); err != nil {
		// A stream the server refused (a viewer's token, say) ends Send
		// with io.EOF; Recv says why.
		if errors.Is(err, io.EOF) {
			if _, rerr := stream.Recv(); rerr != nil && !errors.Is(rerr, io.EOF) {
				err = rerr
			}
		}
		return -1, err
	}
	// Raw mode only once the exec is on its way: an error before prints
	// on a terminal as it was.
	if f, ok := in.(*os.File); ok && start.Tty && term.IsTerminal(int(f.Fd())) {
		if st, err := term.MakeRaw(int(f.Fd())); err == nil {
			restore = func() { _ = term.Restore(int(f.Fd()), st) }
			defer restore()
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if winch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-winch:
					if w, h, err := term.GetSize(termFd); err == nil {
						_ = send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Resize{Resize: &ccv1.TerminalSize{Width: uint32(w), Height: uint32(h)}}})
					}
				}
			}
		}()
	}
	if in != nil {
		// Not waited for: a read of a terminal cannot be interrupted, and
		// ccctl exits after the command anyway.
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					if send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Stdin{Stdin: append([]byte(nil), buf[:n]...)}}) != nil {
						return
					}
				}
				if err != nil {
					_ = send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_CloseStdin{CloseStdin: true}})
					return
				}
			}
		}()
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return -1, errors.New("the exec ended without the command's exit status")
		}
		if err != nil {
			return -1, err
		}
		switch x := m.GetMsg().(type) {
		case *ccv1.ExecResponse_Stdout:
			if _, err := stdout.Write(x.Stdout); err != nil {
				return -1, err
			}
		case *ccv1.ExecResponse_Stderr:
			if _, err := stderr.Write(x.Stderr); err != nil {
				return -1, err
			}
		case *ccv1.ExecResponse_Exit:
			if x.Exit.GetError() != "" {
				return -1, fmt.Errorf("exec: %s", x.Exit.GetError())
			}
			return x.Exit.GetCode(), nil
		}
	}
}
