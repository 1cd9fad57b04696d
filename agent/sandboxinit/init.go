// Package sandboxinit is the first process of a job sandbox (`cc-agent init
// -- CMD...`), as `docker run --init` provides one: in its own PID
// namespace the job's command would be PID 1, and the kernel delivers PID 1
// only the signals it handles, so most programs would ignore the SIGTERM
// of a timeout or a cancel and wait out the kill grace. The init starts
// the command in a process group of its own, forwards the signals it gets
// to that group, reaps every orphan, and exits as the command did (its
// exit code, or 128 + the signal that killed it).
//
// The agent bind-mounts its own binary, which must be statically linked,
// read-only into the sandbox and runs it under the job's user, with no
// capabilities.
package sandboxinit

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// init runs a sandbox's first process as soon as cc-agent starts as one
// (`cc-agent init ...`, as the agent's command line dispatches it too):
// this package needs only the standard library, so its init runs before
// cc-agent's heavier packages are initialized, and the job's command
// starts some 10 ms sooner than it would after them.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		os.Exit(Run(os.Args[2:]))
	}
}

// forwarded are the signals passed on to the command's process group.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// Run runs the command of args (an optional "--" first) and returns the
// exit code to end with.
func Run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "cc-agent init: no command to run (usage: cc-agent init -- CMD [ARG...])")
		return 127
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "cc-agent init: %v\n", err)
		return 127
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	p, err := os.StartProcess(path, args, &os.ProcAttr{
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cc-agent init: start %s: %v\n", args[0], err)
		return 126
	}
	pid := p.Pid
	go func() {
		for s := range sigs {
			// The whole group: a shell and what it started.
			_ = syscall.Kill(-pid, s.(syscall.Signal))
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// No children left: the command was reaped already.
			return 1
		}
		if got != pid {
			continue // an orphan, reaped
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		// What the command left behind dies with this PID namespace.
		return code
	}
}

// Static says whether the binary at path is statically linked (has no
// program interpreter), so that it runs in any image.
func Static(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
