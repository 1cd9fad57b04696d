package server

import (
	"context"
	"time"

	"github.com/containercodes/cc/controlplane/jobs"
)

// collectBlobs runs on every server: every blob_gc.interval it removes the
// blobs of its own store that no record has referred to for blob_gc.grace.
func (s *Server) collectBlobs(ctx context.Context) {
	g := &jobs.BlobGC{Store: s.blobs, InUse: s.fsm.BlobsInUse, Grace: s.cfg.BlobGC.Grace.Duration}
	t := time.NewTicker(s.cfg.BlobGC.Interval.Duration)
	defer t.Stop()
	for {
		removed, err := g.Pass(time.Now())
		if err != nil {
			s.log.Warn("blob collection", "err", err)
		}
		if len(removed) > 0 {
			s.log.Info("removed unreferenced blobs", "count", len(removed))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// HasSession says whether a node's agent holds its session with this
// server (tests use it to find the server an agent talks to).
func (s *Server) HasSession(nodeID string) bool {
	return s.sessions != nil && s.sessions.Connected(nodeID)
}
