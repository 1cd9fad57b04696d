package logger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Draining a logger.
//
// Before it packs the logs of an ended job, the agent must know that the
// logger wrote all the job's output (the pipes may still hold some). The
// logger reads both pipes and a request FIFO, <log dir>/drain, in one loop
// (pumpStreams), each read written before the next read. On a request it
// reads whatever the pipes still hold, writes it, and answers with a byte
// on a second FIFO, <log dir>/drained, which the asking agent holds open.
// Once the task has ended nothing more enters the pipes, so the answer
// means the log files are complete. A request nobody reads (ENXIO) means
// the logger has ended, so nothing more comes either. A logger of an
// earlier agent has no FIFOs; then the agent waits for the files to
// settle (package runtime).

const (
	// DrainFIFO and DrainedFIFO are the FIFOs of the drain requests and
	// their answers in a log directory.
	DrainFIFO   = "drain"
	DrainedFIFO = "drained"
	// drainWait bounds the wait for the logger's answer.
	drainWait = 2 * time.Second
	// pumpTick is how often the logger's loop looks at its signals when
	// its pipes are quiet and it has no pipe to be woken by them.
	pumpTick = 100 * time.Millisecond
	// drainReads bounds the reads of one stream while answering a drain
	// request (an ended task's pipe holds at most 64 KiB by default).
	drainReads = 1024
)

// openDrainFIFO makes the two FIFOs of dir (replacing leftovers) and opens
// the request FIFO for reading, never blocking and never at its end.
func openDrainFIFO(dir string) (int, error) {
	for _, name := range []string{DrainedFIFO, DrainFIFO} {
		p := filepath.Join(dir, name)
		_ = os.Remove(p)
		if err := unix.Mkfifo(p, 0o600); err != nil {
			return -1, fmt.Errorf("make the drain FIFO %s: %w", p, err)
		}
	}
	fd, err := unix.Open(filepath.Join(dir, DrainFIFO), unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open the drain FIFO: %w", err)
	}
	return fd, nil
}

// pumpStreams writes what the stream pipes (fds: stdout, then stderr) carry
// to w (nil: discard) as records, one per read, until both reach their
// end or, after a signal on sigs, grace has passed; it answers drain
// requests read from drain (-1: none) on dir's drained FIFO.
func pumpStreams(w *Writer, fds []int, drain int, dir string, sigs <-chan os.Signal, grace time.Duration) {
	names := []string{"stdout", "stderr"}
	pfds := make([]unix.PollFd, 0, len(fds)+1)
	open := 0
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			pfds = append(pfds, unix.PollFd{Fd: -1})
			continue
		}
		pfds = append(pfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		open++
	}
	pfds = append(pfds, unix.PollFd{Fd: int32(drain), Events: unix.POLLIN})
	buf := make([]byte, 32<<10)
	// read reads stream i once; false when nothing more is there now.
	read := func(i int) bool {
		n, err := unix.Read(int(pfds[i].Fd), buf)
		switch {
		case n > 0:
			if w != nil {
				if werr := w.Write(names[i], buf[:n]); werr != nil {
					fmt.Fprintf(os.Stderr, "logger: %v\n", werr)
				}
			}
			return true
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			return false
		default: // the end, or a broken pipe
			pfds[i].Fd = -1
			open--
			return false
		}
	}
	// A signal wakes the loop through a pipe of its own, so that a quiet
	// logger sleeps in poll without a timeout.
	var signalled atomic.Bool
	wake := -1
	var sp [2]int
	if err := unix.Pipe2(sp[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err == nil {
		wake = sp[0]
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-sigs:
				signalled.Store(true)
				_, _ = unix.Write(sp[1], []byte{1})
			case <-stop:
			}
		}()
		defer func() {
			close(stop)
			wg.Wait()
			_ = unix.Close(sp[0])
			_ = unix.Close(sp[1])
		}()
	}
	pfds = append(pfds, unix.PollFd{Fd: int32(wake), Events: unix.POLLIN})
	var deadline time.Time
	for open > 0 {
		timeout := -1 // no timeout
		switch {
		case !deadline.IsZero():
			timeout = max(1, int(time.Until(deadline)/time.Millisecond))
		case wake < 0:
			timeout = int(pumpTick / time.Millisecond)
		}
		if _, err := unix.Poll(pfds, timeout); err != nil && !errors.Is(err, unix.EINTR) {
			fmt.Fprintf(os.Stderr, "logger: poll: %v\n", err)
			time.Sleep(pumpTick)
		}
		if wake < 0 {
			select {
			case <-sigs:
				signalled.Store(true)
			default:
			}
		}
		if signalled.Load() && deadline.IsZero() {
			deadline = time.Now().Add(grace)
			pfds[len(pfds)-1].Fd = -1 // woken once is enough
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return
		}
		for i := range fds {
			if pfds[i].Fd >= 0 && pfds[i].Revents != 0 {
				read(i)
			}
		}
		d := &pfds[len(fds)] // the drain FIFO
		if d.Fd < 0 || d.Revents&unix.POLLIN == 0 {
			continue
		}
		for {
			if n, _ := unix.Read(int(d.Fd), buf); n <= 0 {
				break
			}
		}
		for i := range fds {
			for j := 0; j < drainReads && pfds[i].Fd >= 0 && read(i); j++ {
			}
		}
		answerDrain(dir)
	}
}

// answerDrain tells the agent waiting on dir's drained FIFO that the
// pipes are drained; nobody waiting is fine.
func answerDrain(dir string) {
	fd, err := unix.Open(filepath.Join(dir, DrainedFIFO), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	_, _ = unix.Write(fd, []byte{1})
	_ = unix.Close(fd)
}

// Drained asks the logger of an ended container, whose logs are in
// dir, to write what its pipes still hold, and says whether they are
// complete: the logger answered, or it has ended. False when it cannot
// tell (a logger of an earlier agent, no answer in drainWait).
func Drained(ctx context.Context, dir string) bool {
	reply, err := os.OpenFile(filepath.Join(dir, DrainedFIFO), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer reply.Close()
	deadline := time.Now().Add(drainWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := reply.SetReadDeadline(deadline); err != nil {
		return false // not pollable: a read could wait for ever
	}
	fd, err := unix.Open(filepath.Join(dir, DrainFIFO), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENXIO) {
		return true // no logger reads it: it has ended
	}
	if err != nil {
		return false
	}
	_, err = unix.Write(fd, []byte{1})
	_ = unix.Close(fd)
	if err != nil {
		return false
	}
	b := make([]byte, 16)
	n, err := reply.Read(b)
	return err == nil && n > 0
}
