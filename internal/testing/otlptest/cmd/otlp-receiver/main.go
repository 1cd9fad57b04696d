// Command otlp-receiver runs package otlptest's OTLP/gRPC trace receiver by
// hand, to look at the traces of a dev cluster without a collector: it
// prints a line per span as spans come, and every trace as a tree on
// SIGUSR1 and when it stops (SIGINT, SIGTERM).
//
//	go run ./internal/testing/otlptest/cmd/otlp-receiver -addr 127.0.0.1:4317
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/containercodes/cc/internal/testing/otlptest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4317", "`HOST:PORT` to receive OTLP/gRPC spans on")
	flag.Parse()
	var mu sync.Mutex
	r, err := otlptest.Listen(*addr, func(spans []otlptest.Span) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range spans {
			fmt.Printf("span %s/%s parent=%s %s [%s %s]\n", s.TraceID, s.SpanID, orNone(s.ParentID), s.Name, s.Service, s.Kind)
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "otlp-receiver:", err)
		os.Exit(1)
	}
	fmt.Printf("receiving OTLP/gRPC spans on %s\n", r.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	for s := range sig {
		mu.Lock()
		fmt.Print(strings.Repeat("-", 72) + "\n" + otlptest.Tree(r.Spans()))
		mu.Unlock()
		if s != syscall.SIGUSR1 {
			break
		}
	}
	r.Close()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
