package testcluster

import (
	"os"
	"path/filepath"
	"strings"
)

// ID is the server's raft id (its certificate's common name), read from its
// data dir.
func (s *Server) ID() string {
	s.t.Helper()
	data, err := os.ReadFile(filepath.Join(s.Config.DataDir, "server-id"))
	if err != nil {
		s.t.Fatalf("testcluster: server id: %v", err)
	}
	return strings.TrimSpace(string(data))
}

// Partition cuts the raft traffic between group and the other servers, in
// both directions, by raft address and by server id; traffic within each
// side flows. Clients and the API (forwarded writes, read indexes) still
// reach every server: only raft is partitioned. Partitions add up until
// Heal; they outlive a Restart.
func (c *Cluster) Partition(group ...*Server) {
	c.t.Helper()
	in := map[*Server]bool{}
	for _, s := range group {
		in[s] = true
	}
	for _, a := range group {
		for _, b := range c.Servers {
			if in[b] {
				continue
			}
			a.Faults.Block(b.Srv.RaftAddr())
			a.Faults.BlockID(b.ID())
			b.Faults.Block(a.Srv.RaftAddr())
			b.Faults.BlockID(a.ID())
		}
	}
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	for _, s := range c.Servers {
		s.Faults.Heal()
	}
}
