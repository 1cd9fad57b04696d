package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDiffAndCopyKey(t *testing.T) {
	a := Default()
	b := a
	b.Log.Level = "debug"
	b.RateLimit.ViewerBurst = 9
	b.JoinToken = "CCTKN-1-secret"
	b.BlobGC.Interval = Duration{time.Minute}
	b.Webhooks.Allow = []string{"10.0.0.0/8"}
	got := map[string]string{}
	for _, c := range Diff(a, b) {
		got[c.Key] = c.String()
	}
	want := map[string]string{
		"log.level":               `log.level: "info" -> "debug"`,
		"rate_limit.viewer_burst": "rate_limit.viewer_burst: 1000 -> 9",
		"join_token":              "join_token: (hidden) -> (hidden)",
		"blob_gc.interval":        "blob_gc.interval: 10m0s -> 1m0s",
		"webhooks.allow":          `webhooks.allow: [] -> ["10.0.0.0/8"]`,
	}
	if len(got) != len(want) {
		t.Fatalf("diff: %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	c := a
	CopyKey(&c, b, "rate_limit")
	CopyKey(&c, b, "log.level")
	CopyKey(&c, b, "no.such.key")
	if d := Diff(c, b); len(d) != 3 || c.RateLimit != b.RateLimit || c.Log.Level != "debug" {
		t.Fatalf("after CopyKey: %v", d)
	}
}

func TestInFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cc.toml")
	os.WriteFile(path, []byte("data_dir = \"/x\"\n\n[log]\nlevel = \"loud\"\n"), 0o600)
	c, err := LoadUnvalidated(path)
	if err != nil {
		t.Fatal(err)
	}
	c.NodeDownAfter = Duration{time.Millisecond} // as a flag would set it
	err = InFile(path, c.Validate())
	var fe *FileError
	if !errors.As(err, &fe) || len(fe.Problems) != 2 || fe.Problems[0].Line != 4 || fe.Problems[1].Line != 0 {
		t.Fatalf("InFile: %v", err)
	}
}
