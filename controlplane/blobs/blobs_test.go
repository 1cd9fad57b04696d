package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/internal/logging"
)

// fakePeers is a cluster of voters of which have hold every pushed blob;
// other holds the blobs they can be pulled from.
type fakePeers struct {
	have, voters int
	pushErr      error
	other        *blobstore.Store
	local        *blobstore.Store
	pulls        int
}

func (p *fakePeers) Push(ctx context.Context, digest string) (int, int, error) {
	return p.have, p.voters, p.pushErr
}

func (p *fakePeers) Pull(ctx context.Context, digest string) error {
	p.pulls++
	rc, _, err := p.other.Open(digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, _, err = p.local.Put(ctx, rc, digest, 0)
	return err
}

func newLocal(t *testing.T) *blobstore.Store {
	t.Helper()
	s, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestStoreReplicatedRefusals(t *testing.T) {
	const data = "some bytes"
	for _, tc := range []struct {
		name string
		u    Upload
		code codes.Code
		msg  string
	}{
		{"negative size", Upload{What: "the input", Size: -1, Limit: 100}, codes.InvalidArgument, "header: size -1 is negative"},
		{"over the limit", Upload{What: "the input", Size: 200, Limit: 100}, codes.InvalidArgument, "the input is 200 bytes, more than the limit of 100"},
		{"bad sha256", Upload{What: "the input", SHA256: "abc", Limit: 100}, codes.InvalidArgument, `header: sha256 "abc" is not 64 lowercase hex digits (with or without sha256:)`},
		{"digest mismatch", Upload{What: "the input", SHA256: sum("other"), Limit: 100}, codes.InvalidArgument, "the input does not match the header's sha256: "},
		{"longer than announced", Upload{What: "the input", Size: 4, Limit: 100}, codes.InvalidArgument, "the upload is longer than the 4 bytes its header gave"},
		{"shorter than announced", Upload{What: "the input", Size: 50, Limit: 100}, codes.InvalidArgument, "the upload ended after 10 bytes; its header gave 50"},
		{"larger than the limit", Upload{What: "the input", Limit: 4}, codes.InvalidArgument, "the input is larger than the limit of 4 bytes"},
		{"no majority", Upload{What: "the output", Limit: 100}, codes.Unavailable, "the output reached 1 of 3 servers, not a majority (down); send it again when the servers are back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := newLocal(t)
			s := New(local, &fakePeers{have: 1, voters: 3, pushErr: errors.New("down")}, logging.Test(t))
			_, _, _, _, err := s.StoreReplicated(context.Background(), strings.NewReader(data), tc.u)
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.HasPrefix(st.Message(), tc.msg) {
				t.Fatalf("err %v, want %v %q", err, tc.code, tc.msg)
			}
		})
	}
}

func TestStoreReplicatedMajority(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		peers                Peers
		wantHave, wantVoters int
	}{
		{"lone server", nil, 1, 1},
		{"two of three", &fakePeers{have: 2, voters: 3}, 2, 3},
		{"three of five, one push failed", &fakePeers{have: 3, voters: 5, pushErr: errors.New("one down")}, 3, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(newLocal(t), tc.peers, logging.Test(t))
			d, n, have, voters, err := s.StoreReplicated(context.Background(), strings.NewReader("data"), Upload{What: "the input", Size: 4, SHA256: "sha256:" + sum("data"), Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if d != "sha256:"+sum("data") || n != 4 || have != tc.wantHave || voters != tc.wantVoters {
				t.Fatalf("got %s %d %d/%d", d, n, have, voters)
			}
			if _, err := s.Local().Stat(d); err != nil {
				t.Fatalf("not stored here: %v", err)
			}
		})
	}
}

func TestOpenAndHasFetchFromPeers(t *testing.T) {
	local, other := newLocal(t), newLocal(t)
	d, _, err := other.Put(context.Background(), strings.NewReader("elsewhere"), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	peers := &fakePeers{other: other, local: local}
	s := New(local, peers, logging.Test(t))

	if err := s.Has(context.Background(), d); err != nil {
		t.Fatalf("Has: %v", err)
	}
	rc, size, err := s.Open(d)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "elsewhere" || size != int64(len(b)) {
		t.Fatalf("read %q (%d bytes, %v)", b, size, err)
	}
	if peers.pulls != 1 {
		t.Fatalf("%d pulls, want 1 (Open of a blob fetched by Has reads it here)", peers.pulls)
	}

	missing := "sha256:" + sum("nowhere")
	if _, _, err := s.Open(missing); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Open of a blob no server has: %v", err)
	}
	if err := s.Has(context.Background(), missing); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Has of a blob no server has: %v", err)
	}
	if _, _, err := New(newLocal(t), nil, nil).Open(d); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Open on a lone server without the blob: %v", err)
	}
}
