package cli

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegistryAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "config.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("alice:s3cret:with-colon"))
	auth, err := registryAuth(write(`{"auths": {"https://reg.example:5000/": {"auth": "` + b64 + `"}, "other.example": {"username": "bob", "password": "pw"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string][2]string{
		"reg.example:5000": {"alice", "s3cret:with-colon"},
		"other.example":    {"bob", "pw"},
		"unknown.example":  {"", ""},
	} {
		u, p, err := auth(host)
		if err != nil || u != want[0] || p != want[1] {
			t.Errorf("auth(%s) = %q, %q, %v; want %q", host, u, p, err, want)
		}
	}
	for _, bad := range []struct{ body, want string }{
		{`not json`, "config.json format"},
		{`{"auths": {"h": {"auth": "%%%"}}}`, "not base64"},
		{`{"auths": {"h": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("nocolon")) + `"}}}`, "user:password"},
	} {
		if _, err := registryAuth(write(bad.body)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("registryAuth(%s) = %v, want an error with %q", bad.body, err, bad.want)
		}
	}
	if _, err := registryAuth(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file must be an error")
	}
}
