package runtime

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

// loggerArgs are the logger's settings.
type loggerArgs struct {
	dir      string
	maxBytes int64
	maxFiles int
	// stdin is the FIFO of the container's stdin (attach.go), held open
	// for writing while the logger runs; "" for none.
	stdin string
}

// query encodes the settings as the single argument the runtime passes.
func (a loggerArgs) query() string {
	v := url.Values{
		"dir":       {a.dir},
		"max-bytes": {strconv.FormatInt(a.maxBytes, 10)},
		"max-files": {strconv.Itoa(a.maxFiles)},
	}
	if a.stdin != "" {
		v.Set("stdin", a.stdin)
	}
	return v.Encode()
}

// parseLoggerArgs accepts the single query-encoded argument the runtime uses
// ("dir=...&max-bytes=...&max-files=...") or flags (--dir, --max-bytes,
// --max-files), for running the logger by hand.
func parseLoggerArgs(args []string) (loggerArgs, error) {
	a := loggerArgs{maxBytes: DefaultLogMaxBytes, maxFiles: DefaultLogMaxFiles}
	if len(args) == 1 && !strings.HasPrefix(args[0], "-") {
		q, err := url.ParseQuery(args[0])
		if err != nil {
			return a, fmt.Errorf("logger: bad settings %q: %w", args[0], err)
		}
		a.dir = q.Get("dir")
		a.stdin = q.Get("stdin")
		if v := q.Get("max-bytes"); v != "" {
			if a.maxBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
				return a, fmt.Errorf("logger: bad max-bytes %q: %w", v, err)
			}
		}
		if v := q.Get("max-files"); v != "" {
			if a.maxFiles, err = strconv.Atoi(v); err != nil {
				return a, fmt.Errorf("logger: bad max-files %q: %w", v, err)
			}
		}
	} else {
		fs := flag.NewFlagSet("logger", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.StringVar(&a.dir, "dir", "", "log directory of the container")
		fs.Int64Var(&a.maxBytes, "max-bytes", a.maxBytes, "rotate at this size")
		fs.IntVar(&a.maxFiles, "max-files", a.maxFiles, "rotated files to keep")
		if err := fs.Parse(args); err != nil {
			return a, fmt.Errorf("logger: %w", err)
		}
	}
	if a.dir == "" {
		return a, errors.New("logger: no log directory given (dir=...)")
	}
	return a, nil
}

// RunLogger runs the logger half of containerd's binary logging protocol
// with the arguments that follow "logger" on cc-agent's command line. It
// returns when both streams reached EOF (the task was deleted) or, after
// SIGTERM, when they are drained or loggerDrainTimeout passed. cc-agent's
// main should call it, before any other set-up, when os.Args[1] == "logger":
//
//	if len(os.Args) > 1 && os.Args[1] == "logger" {
//		if err := runtime.RunLogger(os.Args[2:]); err != nil { os.Exit(1) }
//		os.Exit(0)
//	}
func RunLogger(args []string) error {
	a, err := parseLoggerArgs(args)
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
	if a.stdin != "" {
		if f, err := os.OpenFile(a.stdin, os.O_RDWR, 0); err == nil {
			defer f.Close()
		} else {
			fmt.Fprintf(os.Stderr, "logger: hold stdin of %s: %v\n", os.Getenv("CONTAINER_ID"), err)
		}
	}
	w, werr := newLogWriter(a.dir, a.maxBytes, a.maxFiles)
	if werr != nil {
		// Keep draining so the container never blocks on a full pipe; its
		// output is lost.
		fmt.Fprintf(os.Stderr, "logger: %v; output of %s is discarded\n", werr, os.Getenv("CONTAINER_ID"))
	}
	// The drain FIFO (drain.go); without it the agent waits for the log
	// files to settle instead.
	drain, derr := openDrainFIFO(a.dir)
	if derr != nil {
		fmt.Fprintf(os.Stderr, "logger: %v\n", derr)
	}
	closeReady(ready)

	pumpStreams(w, []int{3, 4}, drain, a.dir, sigs, loggerDrainTimeout)
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
