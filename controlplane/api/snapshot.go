package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// SnapshotChunkSize is the most data one SaveSnapshotResponse carries.
const SnapshotChunkSize = 1 << 20

// SaveSnapshot implements ClusterService: it streams a consistent copy of
// this server's state database (a bbolt file) in chunks. The first message
// carries the raft index the copy reflects, the last the hex SHA-256 of all
// the data; a copy that fits in one chunk has both in one message.
func (s *ClusterService) SaveSnapshot(_ *ccv1.SaveSnapshotRequest, stream ccv1.ClusterService_SaveSnapshotServer) error {
	snap, err := s.core.FSM.BeginSnapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	w := &snapshotSender{send: stream.Send, index: snap.Index(), sum: sha256.New()}
	if _, err := snap.WriteTo(w); err != nil {
		if w.sendErr != nil {
			return w.sendErr
		}
		return fmt.Errorf("write snapshot: %w", err)
	}
	if s.core.Log != nil {
		s.core.Log.Info("snapshot saved by a client", "index", snap.Index(), "bytes", w.total)
	}
	return w.finish()
}

// snapshotSender cuts what is written into messages of SnapshotChunkSize.
type snapshotSender struct {
	send    func(*ccv1.SaveSnapshotResponse) error
	index   uint64
	sum     hash.Hash
	buf     []byte
	sent    bool // the first message, with the index, went out
	total   int64
	sendErr error
}

func (w *snapshotSender) Write(p []byte) (int, error) {
	n := len(p)
	w.sum.Write(p)
	w.total += int64(n)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, SnapshotChunkSize)
		}
		k := min(len(p), SnapshotChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == SnapshotChunkSize {
			// A new buffer for every message: gRPC may still hold the
			// last one after Send returns.
			if err := w.flush(""); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *snapshotSender) flush(sum string) error {
	m := &ccv1.SaveSnapshotResponse{Data: w.buf, Sha256: sum}
	if !w.sent {
		m.Index = w.index
	}
	w.buf = nil
	if err := w.send(m); err != nil {
		w.sendErr = err
		return err
	}
	w.sent = true
	return nil
}

// finish sends what is left with the checksum: a message of its own when
// the data ended on a chunk boundary.
func (w *snapshotSender) finish() error {
	return w.flush(hex.EncodeToString(w.sum.Sum(nil)))
}
