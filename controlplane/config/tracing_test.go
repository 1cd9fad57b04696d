package config

import (
	"errors"
	"strings"
	"testing"
)

// Tracing is off by default; the section turns it on, and bad values are
// reported with their lines and what to do.
func TestTracing(t *testing.T) {
	if d := Default(); d.Tracing != (TracingConfig{SampleRatio: 0.1}) {
		t.Fatalf("default tracing %+v, want off with ratio 0.1", d.Tracing)
	}
	c, err := Parse("t.toml", []byte("data_dir = \"/d\"\n[tracing]\nendpoint = \"otel.example:4317\"\nsample_ratio = 1.0\ninsecure = true\n"))
	if err != nil || c.Tracing != (TracingConfig{Endpoint: "otel.example:4317", SampleRatio: 1, Insecure: true}) {
		t.Fatalf("Parse() = %+v, %v", c.Tracing, err)
	}
	for _, tc := range []struct {
		doc, key, msg string
		line          int
	}{
		{"[tracing]\nendpoint = \"otel.example\"\n", "tracing.endpoint", "it has no port", 3},
		{"[tracing]\nendpoint = \":4317\"\n", "tracing.endpoint", "has no host", 3},
		{"[tracing]\nendpoint = \"otel:0\"\n", "tracing.endpoint", "port 0", 3},
		{"[tracing]\n\nsample_ratio = 2.0\n", "tracing.sample_ratio", "from 0 to 1", 4},
		{"[tracing]\nsample_ratio = -1.0\n", "tracing.sample_ratio", "from 0 to 1", 3},
	} {
		_, err := Parse("t.toml", []byte("data_dir = \"/d\"\n"+tc.doc))
		var fe *FileError
		if !errors.As(err, &fe) || len(fe.Problems) != 1 {
			t.Errorf("%q: %v, want one problem", tc.doc, err)
			continue
		}
		if p := fe.Problems[0]; p.Key != tc.key || p.Line != tc.line || !strings.Contains(p.Msg, tc.msg) {
			t.Errorf("%q: %v, want line %d %s: ...%s...", tc.doc, p, tc.line, tc.key, tc.msg)
		}
	}
}
