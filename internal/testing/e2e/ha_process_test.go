package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// kill ends the process at once (SIGKILL), as a crash would; the test's
// cleanup then accepts that it is gone.
func (s *ccServer) kill() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

// joinServer starts a cc-controlplane that joins through joinAddr.
func joinServer(t *testing.T, dataDir, joinAddr, token string) *ccServer {
	t.Helper()
	p := freePorts(t, 2)
	s := &ccServer{t: t, dataDir: dataDir, addr: p[0], raftAddr: p[1], extra: []string{"--join", joinAddr, "--token", token}}
	if err := s.start(); err != nil {
		t.Fatalf("join cc-controlplane: %v\n%s", err, s.output())
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("graceful shutdown: %v\n%s", err, s.output())
		}
	})
	return s
}

// Three cc-controlplane processes on loopback, as docs/ha.md sets them up:
// one leader; killing it elects another, writes go on through any survivor,
// and the killed server catches up when it comes back.
func TestThreeServerProcesses(t *testing.T) {
	skipShort(t)
	env := ctlEnv(t)
	s1 := startServer(t, t.TempDir(), true)
	admin := s1.adminToken(t)
	_, serverToken := createToken(t, env, s1.flags(admin), "server")
	s2 := joinServer(t, t.TempDir(), s1.addr, serverToken)
	s3 := joinServer(t, t.TempDir(), s1.addr, serverToken)
	all := []*ccServer{s1, s2, s3}
	addrs := func(ss ...*ccServer) string {
		var a []string
		for _, s := range ss {
			a = append(a, s.addr)
		}
		return strings.Join(a, ",")
	}
	flags := func(ss ...*ccServer) []string {
		return []string{"--addr", addrs(ss...), "--token", admin, "--ca-cert", s1.caPath()}
	}

	var list struct {
		Servers []struct {
			ID     string `json:"id"`
			Leader bool   `json:"leader"`
		} `json:"servers"`
	}
	r := ccctl(t, env, append(flags(all...), "-o", "json", "server", "ls")...)
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("server ls: %v\n%s", err, r)
	}
	leaders := 0
	oldLeader := ""
	for _, s := range list.Servers {
		if s.Leader {
			leaders++
			oldLeader = s.ID
		}
	}
	if len(list.Servers) != 3 || leaders != 1 {
		t.Fatalf("server ls: want 3 servers and 1 leader\n%s", r.stdout)
	}

	// Find the leader's process by asking each server who it is.
	var leader *ccServer
	var survivors []*ccServer
	for _, s := range all {
		st := parseStatusJSON(t, ccctl(t, env, append(flags(s), "-o", "json", "status")...))
		if st.ServerID == oldLeader {
			leader = s
		} else {
			survivors = append(survivors, s)
		}
	}
	if leader == nil {
		t.Fatal("no process is the leader")
	}
	leader.kill()

	ok := waitFor(30*time.Second, func() bool {
		r := run(t, env, ctlBin, append(flags(survivors...), "-o", "json", "status")...)
		var st struct {
			LeaderID string `json:"leader_id"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
			return false
		}
		return st.LeaderID != "" && st.LeaderID != oldLeader
	})
	if !ok {
		t.Fatalf("no new leader after killing %s", oldLeader)
	}
	createToken(t, env, flags(survivors...), "viewer")
	want := strings.Count(ccctl(t, env, append(flags(survivors...), "token", "ls")...).stdout, "\n")

	// The killed server comes back on its data dir and catches up.
	back := startServer(t, leader.dataDir, false, leader.addr, leader.raftAddr)
	if !waitFor(30*time.Second, func() bool {
		r := run(t, env, ctlBin, append(flags(back), "token", "ls")...)
		return r.code == 0 && strings.Count(r.stdout, "\n") == want
	}) {
		t.Errorf("the restarted server did not catch up to %d lines of token ls", want)
	}
}
