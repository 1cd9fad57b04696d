package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/buildinfo"
	"github.com/containercodes/cc/internal/readiness"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func readyz(t *testing.T, s *testcluster.Server) (int, readiness.Report) {
	t.Helper()
	res := doHTTP(t, s, http.MethodGet, "/readyz", "")
	var rep readiness.Report
	if err := json.Unmarshal(res.body, &rep); err != nil {
		t.Fatalf("/readyz of %s: %v: %s", s.Config.Name, err, res.body)
	}
	return res.status, rep
}

// /readyz lists every check; ListServers shows each server's checks and
// version; a server cut off from the others is not ready and says why,
// while /healthz (liveness) still answers.
func TestReadiness(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range c.Servers {
		code, rep := readyz(t, s)
		if code != http.StatusOK || !rep.Ready() {
			t.Fatalf("/readyz of %s: %d %+v", s.Config.Name, code, rep)
		}
		names := map[string]bool{}
		for _, ch := range rep.Checks {
			names[ch.Name] = ch.OK && ch.Message != ""
		}
		for _, n := range []string{"raft", "leader", "caught_up", "disk", "tls"} {
			if !names[n] {
				t.Errorf("/readyz of %s: check %s missing or failing: %+v", s.Config.Name, n, rep.Checks)
			}
		}
	}

	var servers *ccv1.ListServersResponse
	for {
		r, err := c.Leader().Client().Cluster.ListServers(ctx, &ccv1.ListServersRequest{})
		if err == nil {
			ready := 0
			for _, s := range r.Servers {
				if s.Ready && s.Version == buildinfo.Version && len(s.Checks) == 5 {
					ready++
				}
			}
			if servers = r; ready == 3 {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("ListServers: %v %v", servers, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A follower alone: no leader, not ready, and says why.
	lone := c.Followers()[0]
	c.Partition(lone)
	defer c.Heal()
	for {
		code, rep := readyz(t, lone)
		if code == http.StatusServiceUnavailable {
			var leader readiness.Result
			for _, ch := range rep.Checks {
				if ch.Name == "leader" {
					leader = ch
				}
			}
			if rep.Status != readiness.StatusNotReady || leader.OK || !leader.Required || leader.Message == "" {
				t.Fatalf("/readyz of the lone server: %+v", rep)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the lone server stays ready: %+v", rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res := doHTTP(t, lone, http.MethodGet, "/healthz", ""); res.status != http.StatusOK {
		t.Fatalf("/healthz of the lone server: %d", res.status)
	}
}
