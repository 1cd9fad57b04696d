package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/tracing"
)

// The config file fills the flags the command line did not set; its
// problems come with their lines.
func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(path, []byte("# node\nname = \"n1\"\nlabel = [\"zone=a\", \"disk=ssd\"]\ncpus = 2.5\nedge = false\nlog_level = \"debug\"\n"), 0o600)
	var got *ucli.Context
	a := app(io.Discard, io.Discard)
	a.Action = func(c *ucli.Context) error {
		cmdline, file, err := applyConfigFile(c, c.String("config"))
		if err != nil {
			return err
		}
		if !cmdline["log-level"] || cmdline["name"] || file["name"].line != 2 {
			t.Errorf("cmdline %v, file %v", cmdline, file)
		}
		got = c
		return nil
	}
	if err := a.Run([]string{"cc-agent", "--config", path, "--log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	if got.String("name") != "n1" || got.Float64("cpus") != 2.5 || got.Bool("edge") || got.String("log-level") != "warn" ||
		strings.Join(got.StringSlice("label"), ",") != "zone=a,disk=ssd" {
		t.Fatalf("flags: name %q cpus %v edge %v log %q labels %q", got.String("name"), got.Float64("cpus"), got.Bool("edge"), got.String("log-level"), got.StringSlice("label"))
	}

	for _, tc := range []struct{ file, want string }{
		{"name = \"n\"\nedge_port = 80\n", "line 2: edge_port: unknown key"},
		{"name = \"n\"\n[edge]\nhttp = 1\n", "line 2: edge: must be a value, not a table"},
		{"name = \"n\"\ncpus = \"lots\"\n", "line 2: cpus: \"lots\""},
		{"name = \"n\n", "line 1: invalid TOML"},
		{"config = \"x\"\n", "line 1: config: unknown key"},
	} {
		os.WriteFile(path, []byte(tc.file), 0o600)
		file, err := readConfigFile(path, app(io.Discard, io.Discard).Flags)
		if err == nil {
			err = checkFileValues(path, file)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.file, err, tc.want)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A reload changes the log level and moves the edge to its new listener
// without a restart; keys that need one are named; a wrong file changes
// nothing and says why, by line.
func TestAgentReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first := freePort(t)
	write("edge_http_addr = \"" + first + "\"\nedge_https_addr = \"off\"\nedge_access_log = \"off\"\ncpus = 2.0\n")
	var logs bytes.Buffer
	log, level, err := logging.NewLeveled(&logs, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	var r *agentReloader
	var e *Edge
	egress := &fakeEgress{}
	a := app(io.Discard, io.Discard)
	a.Action = func(c *ucli.Context) error {
		cmdline, file, err := applyConfigFile(c, c.String("config"))
		if err != nil {
			return err
		}
		e, err = NewEdge(EdgeOptions{Enabled: true, HTTPAddr: c.String("edge-http-addr"), HTTPSAddr: c.String("edge-https-addr"), AccessLog: c.String("edge-access-log")}, "node-1", log)
		if err != nil {
			return err
		}
		r = newAgentReloader(c, cmdline, file, level, e, egress, log)
		return nil
	}
	if err := a.Run([]string{"cc-agent", "--config", path, "--name", "n1"}); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Addr().String() != first {
		t.Fatalf("edge on %s, want %s", e.Addr(), first)
	}

	second := freePort(t)
	write("edge_http_addr = \"" + second + "\"\nedge_https_addr = \"off\"\nedge_access_log = \"off\"\ncpus = 3.0\nlog_level = \"debug\"\nname = \"other\"\njob_egress_allow = [\"10.1.0.0/16,10.2.0.0/16\"]\n")
	res := r.reload()
	if !res.OK() || level.Level() != slog.LevelDebug || e.Addr().String() != second {
		t.Fatalf("reload: %+v; level %v, edge on %s", res, level.Level(), e.Addr())
	}
	applied := strings.Join(res.Applied, "\n")
	if !strings.Contains(applied, `log_level: "info" -> "debug"`) || !strings.Contains(applied, `edge_http_addr: "`+first+`" -> "`+second+`"`) ||
		!strings.Contains(applied, `job_egress_allow: (unset) -> ["10.1.0.0/16", "10.2.0.0/16"]`) || len(egress.set) != 1 {
		t.Errorf("applied: %q", res.Applied)
	}
	// cpus waits for a restart; name was given on the command line, which
	// wins over the file.
	if len(res.Restart) != 1 || res.Restart[0] != `cpus: "2" -> "3"` {
		t.Errorf("restart: %q", res.Restart)
	}
	if resp, err := http.Get("http://" + second + "/"); err != nil {
		t.Fatalf("the new listener: %v", err)
	} else {
		resp.Body.Close()
	}
	// The old server drains in the background, then stops listening.
	closed := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", first)
		if err != nil {
			closed = true
			break
		}
		c.Close()
	}
	if !closed {
		t.Fatal("the old listener still accepts")
	}
	// The same listener with another access log: the port is taken over.
	write("edge_http_addr = \"" + second + "\"\nedge_https_addr = \"off\"\nedge_access_log = \"-\"\ncpus = 3.0\nlog_level = \"debug\"\n")
	if res := r.reload(); !res.OK() || e.Addr().String() != second || e.Options().AccessLog != "-" {
		t.Fatalf("reload of the access log: %+v on %s", res, e.Addr())
	}

	write("edge_http_addr = \"nowhere\"\nlog_level = \"warn\"\n")
	res = r.reload()
	if res.OK() || !strings.HasPrefix(res.Problems[0], "line 1: --edge-http-addr") || level.Level() != slog.LevelDebug || e.Addr().String() != second {
		t.Fatalf("a bad address: %+v; level %v, edge on %s", res, level.Level(), e.Addr())
	}
	write("job_egress_allow = [\"nowhere\"]\nlog_level = \"warn\"\n")
	if res := r.reload(); res.OK() || !strings.Contains(res.Problems[0], "line 1: job_egress_allow") || level.Level() != slog.LevelDebug {
		t.Fatalf("a bad allow-list: %+v", res)
	}
	write("log_level = \"loud\"\n")
	if res := r.reload(); res.OK() || !strings.Contains(res.Problems[0], "line 1: log_level") || level.Level() != slog.LevelDebug {
		t.Fatalf("a bad level: %+v", res)
	}
	if !strings.Contains(logs.String(), "config file refused") {
		t.Fatalf("the log does not say why:\n%s", logs.String())
	}
}

// fakeEgress records the allow-lists a reload sets; runtime's test checks
// the rules themselves (TestJobEgress).
type fakeEgress struct{ set [][]string }

func (f *fakeEgress) SetJobEgressAllow(allow []string) error {
	for _, a := range allow {
		if _, err := netip.ParsePrefix(a); err != nil {
			return fmt.Errorf("%q is not a CIDR", a)
		}
	}
	f.set = append(f.set, allow)
	return nil
}

// A reload applies the tracing_* keys: tracing turns on, with the file's
// settings, and off again; a key set on the command line keeps its value.
func TestAgentReloadTracing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("edge_access_log = \"off\"\n")
	var logs bytes.Buffer
	log, level, err := logging.NewLeveled(&logs, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	tp, err := StartTracing(tracing.Settings{SampleRatio: 0.5}, "n-1", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	var r *agentReloader
	a := app(io.Discard, io.Discard)
	a.Action = func(c *ucli.Context) error {
		cmdline, file, err := applyConfigFile(c, c.String("config"))
		if err != nil {
			return err
		}
		r = newAgentReloader(c, cmdline, file, level, nil, nil, log)
		r.tracer = tp
		return nil
	}
	if err := a.Run([]string{"cc-agent", "--config", path, "--tracing-sample-ratio", "0.5"}); err != nil {
		t.Fatal(err)
	}
	write("edge_access_log = \"off\"\ntracing_endpoint = \"127.0.0.1:4317\"\ntracing_insecure = true\ntracing_sample_ratio = 0.9\n")
	res := r.reload()
	want := tracing.Settings{Endpoint: "127.0.0.1:4317", Insecure: true, SampleRatio: 0.5}
	if got := tp.Settings(); !res.OK() || got.Endpoint != want.Endpoint || got.Insecure != want.Insecure || got.SampleRatio != want.SampleRatio {
		t.Fatalf("after reload: %+v (%+v), want %+v (the ratio from the command line)", got, res, want)
	}
	if !strings.Contains(strings.Join(res.Applied, "\n"), "tracing:") || len(res.Restart) != 0 {
		t.Errorf("applied %q, restart %q", res.Applied, res.Restart)
	}
	write("edge_access_log = \"off\"\ntracing_sample_ratio = \"lots\"\n")
	if res := r.reload(); res.OK() || tp.Settings().Endpoint != want.Endpoint {
		t.Errorf("a bad ratio: %+v, settings %+v", res, tp.Settings())
	}
	write("edge_access_log = \"off\"\n")
	if res := r.reload(); !res.OK() || tp.Settings().Endpoint != "" {
		t.Errorf("tracing still on after its keys went: %+v, %+v", res, tp.Settings())
	}
}
