// Package netns runs code inside another network namespace. A namespace
// belongs to an OS thread, and a socket keeps the namespace it was made
// in: Do runs a function on a thread of its own that has entered the
// namespace, so that the sockets it makes (to dial, or to listen) live
// there while the rest of the program stays where it is.
package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that entered the network namespace at path
// (a bind mount such as /run/netns/NAME, or /proc/PID/ns/net), and brings
// the thread back before any other goroutine may run on it. Should going
// back fail, the thread stays locked and Go ends it with its goroutine.
// It returns fn's error, or why the namespace could not be entered.
func Do(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open the current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine.
			done <- fmt.Errorf("return from network namespace %s: %w (after: %v)", path, err, ferr)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}
