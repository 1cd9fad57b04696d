package testcluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Cluster is N in-process control-plane servers forming one raft cluster.
type Cluster struct {
	t       testing.TB
	Servers []*Server
}

// StartCluster bootstraps one server and joins n-1 more with a server join
// token. Every server is stopped when the test ends.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	first := Start(t, opts...)
	c := &Cluster{t: t, Servers: []*Server{first}}
	if n == 1 {
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := first.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_SERVER, MaxUses: uint32(n - 1)})
	if err != nil {
		t.Fatalf("testcluster: server join token: %v", err)
	}
	for i := 1; i < n; i++ {
		join := append([]Option{}, opts...)
		join = append(join, func(cfg *Config) {
			cfg.Bootstrap = false
			cfg.Join = first.Addr()
			cfg.JoinToken = tok.Secret
			cfg.Name = fmt.Sprintf("server-%d", i+1)
		})
		s := startServer(t, join...)
		s.Token = first.Token
		c.Servers = append(c.Servers, s)
	}
	return c
}

// Leader returns the server that is the leader now, waiting for one.
func (c *Cluster) Leader() *Server {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if !s.stopped && s.Srv.IsLeader() {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("testcluster: no leader within 30s")
	return nil
}

// Followers returns the running servers that are not the leader.
func (c *Cluster) Followers() []*Server {
	l := c.Leader()
	var out []*Server
	for _, s := range c.Servers {
		if s != l && !s.stopped {
			out = append(out, s)
		}
	}
	return out
}
