package blobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/metrics"
)

// LocalStore is the part of the local blob store the collector uses.
type LocalStore interface {
	List() ([]string, error)
	Remove(digest string) error
}

// GC removes blobs that nothing in the state refers to (expired job
// outputs and logs, inputs of deleted jobs, archives of removed images).
// A blob is removed only once it has been unreferenced for Grace, seen so
// in two passes: an upload is stored before the record naming it is
// written.
type GC struct {
	Store LocalStore
	// InUse returns every digest the state refers to.
	InUse func() (map[string]bool, error)
	Grace time.Duration
	// Metrics counts the passes of Run and the blobs removed; nil: none.
	Metrics *metrics.Metrics

	unref map[string]time.Time // digest → first seen unreferenced
}

// Pass runs one collection and returns the digests it removed.
func (g *GC) Pass(now time.Time) ([]string, error) {
	if g.unref == nil {
		g.unref = map[string]time.Time{}
	}
	all, err := g.Store.List()
	if err != nil {
		return nil, err
	}
	used, err := g.InUse()
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(all))
	var removed []string
	var firstErr error
	for _, d := range all {
		seen[d] = true
		if used[d] {
			delete(g.unref, d)
			continue
		}
		since, ok := g.unref[d]
		if !ok {
			g.unref[d] = now
			continue
		}
		if now.Sub(since) < g.Grace {
			continue
		}
		if err := g.Store.Remove(d); err != nil && !errors.Is(err, blobstore.ErrNotFound) {
			if firstErr == nil {
				firstErr = fmt.Errorf("remove blob %s: %w", d, err)
			}
			continue
		}
		delete(g.unref, d)
		removed = append(removed, d)
	}
	for d := range g.unref {
		if !seen[d] {
			delete(g.unref, d)
		}
	}
	return removed, firstErr
}

// Run collects every interval until ctx ends. Every server runs it on its
// own store (blobs are per server, not leader work).
func (g *GC) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		removed, err := g.Pass(time.Now())
		g.Metrics.BlobGC(len(removed), err)
		if err != nil {
			log.Warn("blob collection", "err", err)
		}
		if len(removed) > 0 {
			log.Info("removed unreferenced blobs", "count", len(removed))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
