package blobs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/controlplane/blobstore"
)

func TestGC(t *testing.T) {
	store, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(s string) string {
		d, _, err := store.Put(context.Background(), strings.NewReader(s), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	keep, drop := put("keep"), put("drop")
	used := map[string]bool{keep: true}
	g := &GC{Store: store, InUse: func() (map[string]bool, error) { return used, nil }, Grace: time.Hour}
	now := time.Now()
	if rm, err := g.Pass(now); err != nil || len(rm) != 0 {
		t.Fatalf("first pass removed %v (%v)", rm, err)
	}
	if rm, _ := g.Pass(now.Add(30 * time.Minute)); len(rm) != 0 {
		t.Fatalf("removed within the grace: %v", rm)
	}
	rm, err := g.Pass(now.Add(61 * time.Minute))
	if err != nil || len(rm) != 1 || rm[0] != drop {
		t.Fatalf("removed %v (%v)", rm, err)
	}
	if _, err := store.Stat(keep); err != nil {
		t.Fatalf("kept blob: %v", err)
	}
}
