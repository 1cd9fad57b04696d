// Package metrics is what the control plane's and the agent's Prometheus
// metrics share: a registry per process (never the global one, so that
// tests run several servers and agents in one process) with the Go runtime
// and process collectors, the /metrics handler, a plain HTTP listener for
// it, and the histogram buckets.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every series of Container Codes.
const Namespace = "cc"

// Histogram buckets, in base units.
var (
	// DurationBuckets fit latencies from half a millisecond to a minute.
	DurationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// LongDurationBuckets fit waits and runs from a second to a day.
	LongDurationBuckets = []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600}
	// ByteBuckets fit sizes from a KiB to 16 GiB, by fours.
	ByteBuckets = prometheus.ExponentialBuckets(1024, 4, 13)
	// CountBuckets fit counts of things in a batch, 1 to 4096.
	CountBuckets = prometheus.ExponentialBuckets(1, 2, 13)
)

// NewRegistry returns a registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves g in the Prometheus text format (or OpenMetrics, when
// the scraper asks for it). A collector's error is logged and the rest is
// served.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

// Listener is a plain HTTP listener that serves /metrics only.
type Listener struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// Listen serves h at /metrics on addr (host:port; port 0 picks one) over
// plain HTTP, until Close.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w (choose another address, or an empty one for none)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "only /metrics is served here", http.StatusNotFound)
	})
	l := &Listener{ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return l, nil
}

// Addr is the address the listener serves on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops the listener, letting scrapes in flight finish until ctx
// ends, and waits for it.
func (l *Listener) Close(ctx context.Context) error {
	err := l.srv.Shutdown(ctx)
	if err != nil {
		l.srv.Close()
	}
	<-l.done
	return err
}
