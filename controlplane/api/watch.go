package api

import (
	"context"
	"errors"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// watchCoalesce is the least time between two rounds of a watch stream:
// changes that come meanwhile go out together, each object once. A round
// that took longer waits as long again, so that a stream on a busy server
// reads less often.
const watchCoalesce = 250 * time.Millisecond

// watchSource is what one watch stream (WatchNodes, WatchContainers,
// WatchServices) follows.
type watchSource[T any] struct {
	// all reads every object that matches, by id.
	all func() (map[string]T, error)
	// changed reads the objects changes name: the ones that match, by
	// id, and the ids of those that are gone or no longer match.
	changed func(ch fsm.Changes) (put map[string]T, gone []string, err error)
	// send sends one event; obj is the zero T but for PUT.
	send func(ev ccv1.WatchEvent, id string, obj T) error
}

// runWatch serves a watch stream: every object that matches as PUT, then
// SYNCED, then a PUT or REMOVED per change of the FSM's change feed until
// the caller leaves or the server shuts down. The feed is subscribed
// before the first read, so no change is missed between them.
func runWatch[T any](ctx context.Context, f *fsm.FSM, stream grpc.ServerStream, src watchSource[T]) error {
	feed := f.SubscribeChanges()
	defer feed.Close()
	cur, err := src.all()
	if err != nil {
		return err
	}
	// The stream is open: a REST client gets its headers now.
	if err := stream.SendHeader(metadata.Pairs(StreamOpenHeader, "true")); err != nil {
		return err
	}
	var zero T
	sent := make(map[string]struct{}, len(cur))
	for _, id := range sortedIDs(cur) {
		if err := src.send(ccv1.WatchEvent_WATCH_EVENT_PUT, id, cur[id]); err != nil {
			return err
		}
		sent[id] = struct{}{}
	}
	cur = nil
	if err := src.send(ccv1.WatchEvent_WATCH_EVENT_SYNCED, "", zero); err != nil {
		return err
	}
	wait := watchCoalesce
	for {
		select {
		case <-ctx.Done():
			return status.Error(codes.Unavailable, "the server is shutting down: watch again")
		case <-feed.C():
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return status.Error(codes.Unavailable, "the server is shutting down: watch again")
		case <-t.C:
		}
		began := time.Now()
		ch := feed.Take()
		var (
			put  map[string]T
			gone []string
		)
		if ch.All {
			if put, err = src.all(); err != nil {
				return err
			}
			for id := range sent {
				if _, ok := put[id]; !ok {
					gone = append(gone, id)
				}
			}
		} else if put, gone, err = src.changed(ch); err != nil {
			return err
		}
		sort.Strings(gone)
		for _, id := range gone {
			if _, ok := sent[id]; !ok {
				continue
			}
			if err := src.send(ccv1.WatchEvent_WATCH_EVENT_REMOVED, id, zero); err != nil {
				return err
			}
			delete(sent, id)
		}
		for _, id := range sortedIDs(put) {
			if err := src.send(ccv1.WatchEvent_WATCH_EVENT_PUT, id, put[id]); err != nil {
				return err
			}
			sent[id] = struct{}{}
		}
		wait = max(watchCoalesce, time.Since(began))
	}
}

func sortedIDs[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// readEach reads the objects ids name: the ones found, by id, and the ids
// of those that are gone (get's fsm.ErrNotFound).
func readEach[T any](ids []string, get func(id string) (T, error)) (map[string]T, []string, error) {
	put := make(map[string]T, len(ids))
	var gone []string
	for _, id := range ids {
		x, err := get(id)
		if errors.Is(err, fsm.ErrNotFound) {
			gone = append(gone, id)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		put[id] = x
	}
	return put, gone, nil
}

// changedIDs lists a change set's ids, only want when it is set.
func changedIDs(set map[string]struct{}, want string) []string {
	if want != "" {
		if _, ok := set[want]; ok {
			return []string{want}
		}
		return nil
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	return out
}

// sendWhenChanged serves a stream of whole values (the queues, the status):
// read's value at once, then again whenever it differs from the one sent
// last. It reads after each wake (nil wake: on a timer), at least every
// apart, longer when a read took longer.
func sendWhenChanged[M proto.Message](ctx context.Context, stream grpc.ServerStream, every time.Duration, wake func() <-chan struct{},
	read func() (M, error), send func(M) error) error {
	if err := stream.SendHeader(metadata.Pairs(StreamOpenHeader, "true")); err != nil {
		return err
	}
	var last M
	sent := false
	for {
		var w <-chan struct{}
		if wake != nil {
			w = wake() // before the read: a change after it wakes the next
		}
		began := time.Now()
		m, err := read()
		if err != nil {
			return err
		}
		if !sent || !proto.Equal(m, last) {
			if err := send(m); err != nil {
				return err
			}
			last, sent = m, true
		}
		t := time.NewTimer(max(every, time.Since(began)))
		select {
		case <-ctx.Done():
			t.Stop()
			return status.Error(codes.Unavailable, "the server is shutting down: watch again")
		case <-t.C:
		}
		if w != nil {
			select {
			case <-ctx.Done():
				return status.Error(codes.Unavailable, "the server is shutting down: watch again")
			case <-w:
			}
		}
	}
}
