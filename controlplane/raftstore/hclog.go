package raftstore

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter sends hashicorp/raft's hclog output into the program's slog
// logger, so there is one structured log stream.
type hclogAdapter struct {
	l    *slog.Logger
	name string
	args []interface{}
}

func newHCLog(l *slog.Logger) hclog.Logger { return &hclogAdapter{l: l, name: "raft"} }

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	a.log(level, msg, args)
}

func (a *hclogAdapter) log(level hclog.Level, msg string, args []interface{}) {
	var lvl slog.Level
	switch {
	case level <= hclog.Debug:
		lvl = slog.LevelDebug
	case level == hclog.Info:
		lvl = slog.LevelInfo
	case level == hclog.Warn:
		lvl = slog.LevelWarn
	default:
		lvl = slog.LevelError
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, lvl) {
		return
	}
	all := make([]interface{}, 0, len(a.args)+len(args)+2)
	all = append(all, "logger", a.name)
	all = append(all, a.args...)
	all = append(all, args...)
	a.l.Log(ctx, lvl, msg, all...)
}

func (a *hclogAdapter) Trace(msg string, args ...interface{}) { a.log(hclog.Trace, msg, args) }
func (a *hclogAdapter) Debug(msg string, args ...interface{}) { a.log(hclog.Debug, msg, args) }
func (a *hclogAdapter) Info(msg string, args ...interface{})  { a.log(hclog.Info, msg, args) }
func (a *hclogAdapter) Warn(msg string, args ...interface{})  { a.log(hclog.Warn, msg, args) }
func (a *hclogAdapter) Error(msg string, args ...interface{}) { a.log(hclog.Error, msg, args) }

func (a *hclogAdapter) IsTrace() bool { return false }
func (a *hclogAdapter) IsDebug() bool { return a.l.Enabled(context.Background(), slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.l.Enabled(context.Background(), slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.l.Enabled(context.Background(), slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.l.Enabled(context.Background(), slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []interface{} { return a.args }

func (a *hclogAdapter) With(args ...interface{}) hclog.Logger {
	c := *a
	c.args = append(append([]interface{}{}, a.args...), args...)
	return &c
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	c.name = a.name + "." + name
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case a.IsDebug():
		return hclog.Debug
	case a.IsInfo():
		return hclog.Info
	case a.IsWarn():
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.Info(string(p))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
