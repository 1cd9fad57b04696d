package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containercodes/cc/agent/runtime"
)

// purgeMain removes what the run left in containerd and on the host: the
// agent's namespace (containers, job sandboxes and their mounts, network
// namespaces, images, cgroups) through the agent's own runtime code, the
// ctr baseline's namespace, then the agent's bridge and IPAM directory.
// Missing pieces are fine: it runs after any failure.
func purgeMain(args []string) int {
	fs := flag.NewFlagSet("purge", flag.ExitOnError)
	agentBin := fs.String("agent-bin", "bin/cc-agent", "cc-agent binary (the runtime's logger path)")
	stateDir := fs.String("state-dir", "", "the agent's runtime state dir (DATA_DIR/runtime)")
	scratch := fs.String("scratch-dir", "", "a directory for the ctr namespace's throwaway runtime state")
	ns := fs.String("namespace", "", "containerd namespace of the agent")
	ctrNS := fs.String("ctr-namespace", "", "containerd namespace of the ctr baseline")
	bridge := fs.String("bridge", "", "CNI bridge of the agent")
	subnet := fs.String("subnet", "", "CNI subnet of the agent")
	socket := fs.String("containerd-socket", runtime.DefaultSocket, "containerd socket")
	_ = fs.Parse(args)

	bin, err := filepath.Abs(*agentBin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "jobbench purge: %v\n", err)
		return 1
	}
	jobBridge, jobSubnet := jobNetwork(*bridge, *subnet)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var errs []error
	purge := func(namespace, dir string) {
		if namespace == "" || dir == "" {
			return
		}
		if !namespaceExists(ctx, *socket, namespace) && !exists(dir) {
			return
		}
		rt, err := runtime.New(ctx, runtime.Config{
			Socket: *socket, Namespace: namespace, StateDir: dir, BridgeName: *bridge, Subnet: *subnet,
			JobBridgeName: jobBridge, JobSubnet: jobSubnet,
			LoggerPath: bin, Logger: log,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("namespace %s: %w", namespace, err))
			return
		}
		defer rt.Close()
		if err := rt.Purge(ctx); err != nil {
			errs = append(errs, fmt.Errorf("namespace %s: %w", namespace, err))
		}
	}
	purge(*ns, *stateDir)
	if *ctrNS != "" && *scratch != "" {
		purge(*ctrNS, filepath.Join(*scratch, "ctr-runtime"))
	}
	for _, br := range []string{*bridge, jobBridge} {
		if br == "" {
			continue
		}
		if exec.Command("ip", "link", "show", br).Run() == nil {
			if out, err := exec.Command("ip", "link", "del", br).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", br, err, out))
			}
		}
		_ = os.RemoveAll(filepath.Join("/var/lib/cni/networks", br))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "jobbench purge: %v\n", err)
		return 1
	}
	return 0
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// namespaceExists asks containerd whether a namespace exists.
func namespaceExists(ctx context.Context, socket, name string) bool {
	out, err := exec.CommandContext(ctx, "ctr", "--address", socket, "namespaces", "ls", "-q").Output()
	if err != nil {
		return true // cannot tell: purge
	}
	for _, l := range strings.Split(string(out), "\n") {
		if l == name {
			return true
		}
	}
	return false
}

// jobNetwork is the job bridge and subnet of the bench's agent, made from
// its container bridge and subnet (so that the bench never touches the
// default job bridge of an agent of this host): the bridge with a "j"
// after it, the subnet with its second byte plus two (10.215.x.0/24 →
// 10.217.x.0/24). Empty when the bridge or subnet is.
func jobNetwork(bridge, subnet string) (string, string) {
	p, err := netip.ParsePrefix(subnet)
	if bridge == "" || err != nil || !p.Addr().Is4() {
		return "", ""
	}
	a := p.Addr().As4()
	a[1] += 2
	return bridge + "j", netip.PrefixFrom(netip.AddrFrom4(a), p.Bits()).String()
}
