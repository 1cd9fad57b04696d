package ctl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Against a real server, a jobs token's `job submit` over a cap or as
// root is refused with the reason; `cluster settings` sets the caps.
func TestJobSubmitOverTheCaps(t *testing.T) {
	srv := testcluster.Start(t)
	t.Setenv("CC_CONFIG", filepath.Join(t.TempDir(), "config.json"))
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, srv.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := srv.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_JOBS})
	if err != nil {
		t.Fatal(err)
	}
	admin := []string{"--addr", srv.Addr(), "--token", srv.Token, "--ca-cert", caFile}
	jobs := []string{"--addr", srv.Addr(), "--token", tok.Secret, "--ca-cert", caFile}

	if r := runCtl(admin, "cluster", "settings", "--max-memory", "64g"); r.code != 0 || !strings.Contains(r.stdout, "64.0 GiB") {
		t.Fatalf("cluster settings --max-memory 64g: %+v", r)
	}
	for _, tt := range []struct {
		args []string
		text string
	}{
		{[]string{"--memory", "4t"}, "memory 4TiB is above the cluster's cap of 64GiB (ccctl cluster settings --max-memory)"},
		{[]string{"--pids", "1000000"}, "pids 1000000 is above the cluster's cap of 32768 (ccctl cluster settings --max-pids"},
		{[]string{"--user", "0"}, "only an admin token may run a job as root"},
	} {
		args := append(append([]string{"job", "submit"}, tt.args...), "busybox", "true")
		if r := runCtl(jobs, args...); r.code == 0 || !strings.Contains(r.stderr, tt.text) {
			t.Errorf("job submit %v: %+v, want a refusal with %q", tt.args, r, tt.text)
		}
	}
	if r := runCtl(jobs, "job", "submit", "-q", "--memory", "1g", "--user", "1000", "busybox", "true"); r.code != 0 {
		t.Errorf("a job within the caps: %+v", r)
	}
}
