package ctl

import (
	"testing"

	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestParseMounts(t *testing.T) {
	got, err := parseMounts([]string{"data:/data", "logs:/var/log:ro", "/srv/x:/x"},
		[]string{"type=tmpfs,target=/scratch,tmpfs-size=64m", "type=bind,source=/srv/y,target=/y,readonly"})
	if err != nil {
		t.Fatal(err)
	}
	want := []*ccv1.Mount{
		{Type: "volume", Source: "data", Target: "/data"},
		{Type: "volume", Source: "logs", Target: "/var/log", ReadOnly: true},
		{Type: "bind", Source: "/srv/x", Target: "/x"},
		{Type: "tmpfs", Target: "/scratch", TmpfsSizeBytes: 64 << 20},
		{Type: "bind", Source: "/srv/y", Target: "/y", ReadOnly: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("mount %d: got %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"data", "data:/d:rx", ":/d"} {
		if _, err := parseMounts([]string{bad}, nil); err == nil {
			t.Errorf("-v %q accepted", bad)
		}
	}
	for _, bad := range []string{"type=nfs,target=/x", "source=data", "type=volume,target=/x,color=red"} {
		if _, err := parseMounts(nil, []string{bad}); err == nil {
			t.Errorf("--mount %q accepted", bad)
		}
	}
}
