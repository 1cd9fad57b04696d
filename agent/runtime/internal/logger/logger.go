// Package logger is the logger process of a container (`cc-agent logger`,
// started by containerd's shim for every container) and what it writes:
// the log files, their records and their rotation, and the drain requests
// it answers. It needs only the standard library and x/sys, so that its
// init function, which runs the logger when the binary starts as one,
// runs before cc-agent's heavier packages are initialized: a container's
// task is created some milliseconds sooner. Package runtime reads the
// files and asks for the drains.
package logger

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == "logger" {
		if err := Run(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "cc-agent logger: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// The logger.
//
// Containers are started with containerd's binary log driver: the shim runs
// LoggerPath (cc-agent) as a child of its own, so the logger outlives the
// agent and a container keeps logging while the agent restarts. The shim
// passes the container's stdout as fd 3, its stderr as fd 4 and a "ready"
// pipe as fd 5, which the logger closes once it is ready; the environment
// holds CONTAINER_ID and CONTAINER_NAMESPACE. The arguments come from the
// query of the binary:// log URI, one "key value" pair per query entry, in
// no particular order; the runtime uses a single entry, so the command line
// is
//
//	cc-agent logger 'dir=/var/lib/cc/logs/ID&max-bytes=10485760&max-files=3'
//
// The shim keeps its ends of the pipes open until the task is deleted; then
// it closes them and sends SIGTERM. The logger drains both pipes to EOF (for
// at most loggerDrainTimeout after SIGTERM) and exits. Meanwhile it answers
// the agent's drain requests (drain.go), so that the logs of an ended job
// are packed as soon as they are complete.

// loggerDrainTimeout bounds how long the logger keeps draining after SIGTERM.
const loggerDrainTimeout = 5 * time.Second

// Args are the logger's settings.
type Args struct {
	// Dir is the container's log directory.
	Dir string
	// MaxBytes rotates the log file at this size, MaxFiles rotated files
	// are kept.
	MaxBytes int64
	MaxFiles int
	// Stdin is the FIFO of the container's stdin (package runtime,
	// attach.go), held open for writing while the logger runs; "" for
	// none.
	Stdin string
}

// Query encodes the settings as the single argument the runtime passes.
func (a Args) Query() string {
	v := url.Values{
		"dir":       {a.Dir},
		"max-bytes": {strconv.FormatInt(a.MaxBytes, 10)},
		"max-files": {strconv.Itoa(a.MaxFiles)},
	}
	if a.Stdin != "" {
		v.Set("stdin", a.Stdin)
	}
	return v.Encode()
}

// parseArgs accepts the single query-encoded argument the runtime uses
// ("dir=...&max-bytes=...&max-files=...") or flags (--dir, --max-bytes,
// --max-files), for running the logger by hand.
func parseArgs(args []string) (Args, error) {
	a := Args{MaxBytes: DefaultMaxBytes, MaxFiles: DefaultMaxFiles}
	if len(args) == 1 && !strings.HasPrefix(args[0], "-") {
		q, err := url.ParseQuery(args[0])
		if err != nil {
			return a, fmt.Errorf("logger: bad settings %q: %w", args[0], err)
		}
		a.Dir = q.Get("dir")
		a.Stdin = q.Get("stdin")
		if v := q.Get("max-bytes"); v != "" {
			if a.MaxBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
				return a, fmt.Errorf("logger: bad max-bytes %q: %w", v, err)
			}
		}
		if v := q.Get("max-files"); v != "" {
			if a.MaxFiles, err = strconv.Atoi(v); err != nil {
				return a, fmt.Errorf("logger: bad max-files %q: %w", v, err)
			}
		}
	} else {
		fs := flag.NewFlagSet("logger", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.StringVar(&a.Dir, "dir", "", "log directory of the container")
		fs.Int64Var(&a.MaxBytes, "max-bytes", a.MaxBytes, "rotate at this size")
		fs.IntVar(&a.MaxFiles, "max-files", a.MaxFiles, "rotated files to keep")
		if err := fs.Parse(args); err != nil {
			return a, fmt.Errorf("logger: %w", err)
		}
	}
	if a.Dir == "" {
		return a, errors.New("logger: no log directory given (dir=...)")
	}
	return a, nil
}

// Run runs the logger half of containerd's binary logging protocol with
// the arguments that follow "logger" on cc-agent's command line. It
// returns when both streams reached EOF (the task was deleted) or, after
// SIGTERM, when they are drained or loggerDrainTimeout passed.
func Run(args []string) error {
	a, err := parseArgs(args)
	ready := os.NewFile(5, "ready")
	if err != nil {
		closeReady(ready)
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	// The container's stdin FIFO, held open (read-write: the open never
	// waits) so that its stdin never sees an end when an attached client
	// goes (the shim would end a terminal then); never read here.
	if a.Stdin != "" {
		if f, err := os.OpenFile(a.Stdin, os.O_RDWR, 0); err == nil {
			defer f.Close()
		} else {
			fmt.Fprintf(os.Stderr, "logger: hold stdin of %s: %v\n", os.Getenv("CONTAINER_ID"), err)
		}
	}
	w, werr := NewWriter(a.Dir, a.MaxBytes, a.MaxFiles)
	if werr != nil {
		// Keep draining so the container never blocks on a full pipe; its
		// output is lost.
		fmt.Fprintf(os.Stderr, "logger: %v; output of %s is discarded\n", werr, os.Getenv("CONTAINER_ID"))
	}
	// The drain FIFO (drain.go); without it the agent waits for the log
	// files to settle instead.
	drain, derr := openDrainFIFO(a.Dir)
	if derr != nil {
		fmt.Fprintf(os.Stderr, "logger: %v\n", derr)
	}
	closeReady(ready)

	pumpStreams(w, []int{3, 4}, drain, a.Dir, sigs, loggerDrainTimeout)
	if drain >= 0 {
		_ = syscall.Close(drain)
	}
	if w != nil {
		return w.Close()
	}
	return werr
}

func closeReady(f *os.File) {
	if f == nil {
		return
	}
	_, _ = f.Write([]byte{0})
	_ = f.Close()
}
