package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcerts"
)

// `config validate` refuses an operator's certificate with a key that is not
// its own, naming the line, the key file and what to do.
func TestConfigValidateMismatchedKey(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.IssueNow(t, "api.localhost").Write(t, dir)
	otherKey := filepath.Join(dir, "other.key")
	if err := os.WriteFile(otherKey, ca.IssueNow(t, "api.localhost").KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(key string) string {
		path := filepath.Join(t.TempDir(), "cp.toml")
		doc := fmt.Sprintf("data_dir = %q\ntls_cert_file = %q\ntls_key_file = %q\n", dir, certFile, key)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	var out, errOut bytes.Buffer
	bad := write(otherKey)
	if code := Main([]string{"cc-controlplane", "config", "validate", bad}, &out, &errOut); code == 0 {
		t.Fatalf("config validate accepted a mismatched key:\n%s%s", out.String(), errOut.String())
	}
	want := fmt.Sprintf("%s: line 3: tls_key_file: %s: this key does not match the certificate in %s; use the key the certificate was issued for", bad, otherKey, certFile)
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr:\n%s\nwant a line starting %q", errOut.String(), want)
	}

	out.Reset()
	errOut.Reset()
	good := write(keyFile)
	if code := Main([]string{"cc-controlplane", "config", "validate", good}, &out, &errOut); code != 0 || out.String() != good+": ok\n" {
		t.Errorf("config validate of a good pair: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}
