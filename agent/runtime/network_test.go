package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	gocni "github.com/containerd/go-cni"
)

// TestLeftoverNetwork: Remove of a container id without a container
// record detaches the network its mark records, the bridge when only its
// namespace is left (an agent before the mark), and nothing when its
// creation never reached the network.
func TestLeftoverNetwork(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{cfg: Config{StateDir: filepath.Join(dir, "state"), NetNSDir: filepath.Join(dir, "netns"), Namespace: "cc"}}

	if mode, _, ok := r.leftoverNetwork("fresh"); ok {
		t.Errorf("a container never created: network %q to detach, want none", mode)
	}

	ports := []gocni.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
	if err := r.markNetwork("marked", networkJob, ports); err != nil {
		t.Fatal(err)
	}
	if mode, got, ok := r.leftoverNetwork("marked"); !ok || mode != networkJob || !slices.Equal(got, ports) {
		t.Errorf("marked: %q %v %v, want %q %v", mode, got, ok, networkJob, ports)
	}
	if err := r.markNetwork("none", networkNone, nil); err != nil {
		t.Fatal(err)
	}
	if mode, got, ok := r.leftoverNetwork("none"); !ok || mode != networkNone || len(got) != 0 {
		t.Errorf("none: %q %v %v, want %q and no ports", mode, got, ok, networkNone)
	}

	if err := os.MkdirAll(r.cfg.NetNSDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.netnsPath("old"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if mode, _, ok := r.leftoverNetwork("old"); !ok || mode != networkBridge {
		t.Errorf("a namespace without a mark: %q %v, want %q", mode, ok, networkBridge)
	}
}
