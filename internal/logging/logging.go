// Package logging builds the structured loggers (log/slog) of the programs,
// with the trace and span ids of the context a record is logged with, and
// routes them to t.Log in tests.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// New returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format ("text" or "json"). A record logged with a context
// that carries a span gets its trace_id and span_id (WithTraceIDs).
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	log, _, err := NewLeveled(w, level, format)
	return log, err
}

// NewLeveled is New with the level kept in a slog.LevelVar, so that a
// reload of the configuration can change it while the program runs
// (SetLevel).
func NewLeveled(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := SetLevel(lv, level); err != nil {
		return nil, nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(WithTraceIDs(slog.NewTextHandler(w, opts))), lv, nil
	case "json":
		return slog.New(WithTraceIDs(slog.NewJSONHandler(w, opts))), lv, nil
	default:
		return nil, nil, fmt.Errorf("log format %q: use text or json", format)
	}
}

// SetLevel sets lv to level ("debug", "info", "warn", "error"); an unknown
// level leaves lv as it was.
func SetLevel(lv *slog.LevelVar, level string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	lv.Set(l)
	return nil
}

// Test returns a logger that writes through t.Log, so output shows only for
// failing tests (or with -v) and stays attached to the test that wrote it.
func Test(t testing.TB) *slog.Logger {
	return slog.New(WithTraceIDs(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
