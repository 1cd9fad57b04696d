package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/internal/testing/otlptest"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// A reload (SIGHUP, `config reload`) applies the [tracing] section:
// tracing turns on without a restart and the next API call is a trace at
// the receiver; a wrong section is refused with why, and off turns it off
// again.
func TestReloadTracing(t *testing.T) {
	srv := testcluster.Start(t)
	recv := otlptest.Start(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	path := filepath.Join(t.TempDir(), "cc.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Srv.Tracing(); got.Endpoint != "" {
		t.Fatalf("tracing on before any reload: %+v", got)
	}
	flags := func(c *config.Config) {
		c.DataDir = srv.Config.DataDir
		c.APIAddr, c.RaftAddr = srv.Config.APIAddr, srv.Config.RaftAddr
	}
	write("")
	start, err := loadFile(path, flags)
	if err != nil {
		t.Fatal(err)
	}
	r := &reloader{path: path, load: func() (config.Config, error) { return loadFile(path, flags) }, srv: srv.Srv, level: new(slog.LevelVar), log: log, cur: start}
	write("[tracing]\nendpoint = \"" + recv.Addr() + "\"\nsample_ratio = 1.0\ninsecure = true\n")
	res := r.reload()
	if got, want := srv.Srv.Tracing(), (config.TracingConfig{Endpoint: recv.Addr(), SampleRatio: 1, Insecure: true}); got != want || !res.OK() {
		t.Fatalf("after reload: %+v, want %+v (%+v)", got, want, res)
	}
	if applied := strings.Join(res.Applied, "\n"); !strings.Contains(applied, "tracing.endpoint") {
		t.Fatalf("the reload does not say what changed: %q", applied)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.Client().Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := recv.Wait(ctx, func(spans []otlptest.Span) bool {
		for _, s := range spans {
			if s.Name == "cc.v1.NodeService/ListNodes" && s.Kind == "server" && s.Service == "cc-controlplane" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no span of the call after the reload: %v\n%s", err, otlptest.Tree(recv.Spans()))
	}

	write("[tracing]\nendpoint = \"" + recv.Addr() + "\"\nsample_ratio = 7.0\n")
	res = r.reload()
	if got := srv.Srv.Tracing(); got.SampleRatio != 1 {
		t.Fatalf("a bad section changed tracing: %+v", got)
	}
	if res.OK() || !strings.Contains(strings.Join(res.Problems, "\n"), "tracing.sample_ratio") {
		t.Fatalf("the refusal does not say why: %+v", res)
	}
	if out := logs.String(); !strings.Contains(out, "refused") {
		t.Fatalf("log does not say the file was refused:\n%s", out)
	}

	write("[tracing]\nendpoint = \"\"\n")
	r.reload()
	if got := srv.Srv.Tracing(); got.Endpoint != "" {
		t.Fatalf("tracing still on: %+v", got)
	}
}
