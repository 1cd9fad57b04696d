package tracing

import (
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
)

// LogErrors sends the OpenTelemetry SDK's errors (a receiver that cannot
// be reached, spans dropped) to log as warnings, at most one a minute with
// the count of those left out, instead of the SDK's default of standard
// error at every failed export. It sets the process's OpenTelemetry error
// handler, so only a program's main calls it.
func LogErrors(log *slog.Logger) {
	otel.SetErrorHandler(&errorLog{log: log, every: time.Minute})
}

type errorLog struct {
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (e *errorLog) Handle(err error) {
	e.mu.Lock()
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < e.every {
		e.skipped++
		e.mu.Unlock()
		return
	}
	skipped := e.skipped
	e.last, e.skipped = now, 0
	e.mu.Unlock()
	e.log.Warn("tracing: spans not sent (check tracing.endpoint and the receiver)", "err", err, "errors_since_last", skipped)
}
