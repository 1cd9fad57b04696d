//go:build windows

package ctl

import "os"

// notifyResize does nothing on Windows, which has no SIGWINCH: an exec's
// terminal keeps the size it started with.
func notifyResize(chan os.Signal) {}
