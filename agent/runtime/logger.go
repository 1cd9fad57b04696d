package runtime

import "github.com/containercodes/cc/agent/runtime/internal/logger"

// RunLogger runs the logger of a container (package logger, internal to
// the runtime: containerd's binary log driver, the log files, the drain
// requests) with the arguments that follow "logger" on cc-agent's command
// line. In cc-agent the logger package's init function runs it first, as
// soon as the binary starts; a binary that dispatches its arguments itself
// (a test helper) calls this.
func RunLogger(args []string) error { return logger.Run(args) }
