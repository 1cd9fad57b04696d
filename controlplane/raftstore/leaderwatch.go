package raftstore

import (
	"errors"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// A follower waits for the heartbeat timeout (1-2 heartbeat timeouts in
// hashicorp/raft) before it calls an election, and that timeout must stay
// long enough that a busy host does not depose a live leader. A leader
// whose process died is known sooner: its raft port refuses connections.
// watchLeader looks for that and starts the election at once.
//
// The rule, on a follower:
//   - the leader has been silent for missedHeartbeats heartbeat periods
//     (hashicorp/raft sends one every tenth of the heartbeat timeout);
//   - a TCP connection to the leader's raft address is refused (ECONNREFUSED:
//     nothing listens there; a live leader that is slow, partitioned or on a
//     host that vanished gives a timeout or a success instead, and is left to
//     the heartbeat timeout);
//   - after a pause, the leader is still the same and still silent. The
//     followers take turns so that they do not all stand at once and split
//     the vote: the voters other than the leader in the order of their ids,
//     one heartbeat timeout apart, the first at once. The next one stands
//     only if the one before it did not win (its log was behind, or it is
//     gone too).
//
// Then the follower sends itself raft's TimeoutNow, the message a leader
// sends when it hands over leadership: the follower becomes a candidate
// and the others grant their votes although they have not missed the
// leader yet. Votes still require an up-to-date log, so safety is raft's.
const missedHeartbeats = 3

func (s *Store) watchLeader(done <-chan struct{}, heartbeatTimeout time.Duration) {
	period := heartbeatTimeout / 10
	if period < 5*time.Millisecond {
		period = 5 * time.Millisecond
	}
	t := time.NewTicker(period / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		addr, id, ok := s.silentLeader(period)
		if !ok || !refused(addr, period) {
			continue
		}
		select {
		case <-done:
			return
		case <-time.After(s.turn(id) * heartbeatTimeout):
		}
		if a, i, ok := s.silentLeader(period); !ok || a != addr || i != id {
			continue // someone stood already, or the leader spoke
		}
		s.log.Warn("the leader's raft port refuses connections: starting an election now instead of waiting for the heartbeat timeout",
			"leader_id", string(id), "leader_address", string(addr), "silent_for", time.Since(s.raft.LastContact()).Round(time.Millisecond))
		s.leaderGone.Add(1)
		me := raft.ServerAddress(s.Addr())
		req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
			ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(s.id), Addr: s.transport.EncodePeer(raft.ServerID(s.id), me),
		}}
		if err := s.transport.TimeoutNow(raft.ServerID(s.id), me, req, &raft.TimeoutNowResponse{}); err != nil {
			s.log.Warn("could not start the election; the heartbeat timeout will", "err", err)
		}
	}
}

// turn is this server's place among the voters other than the leader, in
// the order of their ids.
func (s *Store) turn(leader raft.ServerID) time.Duration {
	fut := s.raft.GetConfiguration()
	if fut.Error() != nil {
		return 0
	}
	var ids []string
	for _, srv := range fut.Configuration().Servers {
		if srv.Suffrage == raft.Voter && srv.ID != leader {
			ids = append(ids, string(srv.ID))
		}
	}
	slices.Sort(ids)
	return time.Duration(max(0, slices.Index(ids, s.id)))
}

// silentLeader returns the leader this follower knows when it has not heard
// from it for missedHeartbeats heartbeat periods.
func (s *Store) silentLeader(period time.Duration) (raft.ServerAddress, raft.ServerID, bool) {
	if s.raft.State() != raft.Follower {
		return "", "", false
	}
	addr, id := s.raft.LeaderWithID()
	if addr == "" || string(id) == s.id {
		return "", "", false
	}
	if time.Since(s.raft.LastContact()) < missedHeartbeats*period {
		return "", "", false
	}
	return addr, id, true
}

// refused reports whether a TCP connection to addr is refused.
func refused(addr raft.ServerAddress, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
