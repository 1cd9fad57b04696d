package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcerts"
)

// tls_cert_file and tls_key_file: both or neither, and a pair the server can
// use, each problem on the key it is about, with its line.
func TestOperatorCertFiles(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.IssueNow(t, "api.localhost").Write(t, dir)
	otherKey := filepath.Join(dir, "other.key")
	if err := os.WriteFile(otherKey, ca.IssueNow(t, "api.localhost").KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		cert, key  string
		wantKey    string // "" means valid
		wantInMsg  []string
		wantAtLine int
	}{
		{"good pair", certFile, keyFile, "", nil, 0},
		{"cert only", certFile, "", "tls_cert_file", []string{"set without tls_key_file"}, 3},
		{"key only", "", keyFile, "tls_key_file", []string{"set without tls_cert_file"}, 4},
		{"mismatched key", certFile, otherKey, "tls_key_file", []string{otherKey, "does not match the certificate in " + certFile, "use the key the certificate was issued for"}, 4},
		{"unreadable cert", filepath.Join(dir, "missing.crt"), keyFile, "tls_cert_file", []string{"missing.crt", "does not exist"}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := "data_dir = \"/d\"\n\n"
			if tc.cert != "" {
				doc += fmt.Sprintf("tls_cert_file = %q\n", tc.cert)
			} else {
				doc += "\n"
			}
			if tc.key != "" {
				doc += fmt.Sprintf("tls_key_file = %q\n", tc.key)
			}
			path := filepath.Join(t.TempDir(), "cp.toml")
			if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if cfg.TLSCertFile != tc.cert || cfg.TLSKeyFile != tc.key {
					t.Errorf("files = %q, %q", cfg.TLSCertFile, cfg.TLSKeyFile)
				}
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) || len(fe.Problems) != 1 {
				t.Fatalf("Load = %v, want one problem", err)
			}
			p := fe.Problems[0]
			if p.Key != tc.wantKey || p.Line != tc.wantAtLine {
				t.Errorf("problem %v: want key %s at line %d", p, tc.wantKey, tc.wantAtLine)
			}
			for _, w := range tc.wantInMsg {
				if !strings.Contains(p.Msg, w) {
					t.Errorf("problem %q does not say %q", p.Msg, w)
				}
			}
		})
	}
}
