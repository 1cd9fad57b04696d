package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"

	gocni "github.com/containerd/go-cni"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/containercodes/cc/internal/netns"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Networking.
//
// Every container gets a network namespace of its own, created by the
// runtime and mounted at <NetNSDir>/<namespace>-<id> (visible to
// `ip netns`). In bridge mode CNI attaches it to the node's bridge (bridge
// plugin with a gateway and masquerading, host-local IPAM on Subnet, portmap
// for published ports with SNAT so 127.0.0.1:hostport works, firewall to
// allow the traffic through FORWARD); in none mode only the loopback plugin
// runs (lo up, nothing else). The CNI configuration is written to
// <StateDir>/cni/<bridge>.conflist; IPAM leases live in <StateDir>/cni/ipam.
// A job sandbox with network is in job mode: the same on the job bridge,
// behind the agent's egress filter (jobnet.go).

const (
	networkBridge = "bridge"
	networkNone   = "none"
)

func networkMode(m ccv1.NetworkMode) string {
	if m == ccv1.NetworkMode_NETWORK_MODE_NONE {
		return networkNone
	}
	return networkBridge
}

func (r *Runtime) confListPath() string {
	return filepath.Join(r.cfg.StateDir, "cni", r.cfg.BridgeName+".conflist")
}

// bridgeConfList is the CNI configuration of the bridge network.
func (r *Runtime) bridgeConfList() ([]byte, error) {
	if _, _, err := net.ParseCIDR(r.cfg.Subnet); err != nil {
		return nil, fmt.Errorf("runtime: subnet %q is not a CIDR: %w", r.cfg.Subnet, err)
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       r.cfg.BridgeName,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      r.cfg.BridgeName,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": r.cfg.Subnet}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
					// Leases live in host-local's default, host-wide
					// directory, keyed by network (= bridge) name, so that
					// agents sharing a bridge never hand out the same IP.
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
				"snat":         true,
			},
			map[string]any{
				"type":    "firewall",
				"backend": "iptables",
			},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

func (r *Runtime) initCNI() error {
	for _, p := range []string{"bridge", "host-local", "portmap", "firewall", "loopback"} {
		if _, err := os.Stat(filepath.Join(r.cfg.CNIBinDir, p)); err != nil {
			return fmt.Errorf("runtime: CNI plugin %s missing in %s: %w; install Debian's containernetworking-plugins (scripts/prereqs.sh)", p, r.cfg.CNIBinDir, err)
		}
	}
	b, err := r.bridgeConfList()
	if err != nil {
		return err
	}
	path := r.confListPath()
	if err := writeIfChanged(path, b); err != nil {
		return err
	}
	bridge, err := gocni.New(
		gocni.WithPluginDir([]string{r.cfg.CNIBinDir}),
		gocni.WithConfListFile(path), // eth0
		gocni.WithLoNetwork,
		gocni.WithMinNetworkCount(2),
	)
	if err != nil {
		return fmt.Errorf("runtime: load CNI config %s: %w", path, err)
	}
	jb, err := r.jobConfList()
	if err != nil {
		return err
	}
	jpath := r.jobConfListPath()
	if err := writeIfChanged(jpath, jb); err != nil {
		return err
	}
	job, err := gocni.New(
		gocni.WithPluginDir([]string{r.cfg.CNIBinDir}),
		gocni.WithConfListFile(jpath), // eth0
		gocni.WithLoNetwork,
		gocni.WithMinNetworkCount(2),
	)
	if err != nil {
		return fmt.Errorf("runtime: load CNI config %s: %w", jpath, err)
	}
	// Before any job can attach to the job bridge.
	r.fwMu.Lock()
	err = r.jobFW.install()
	r.fwMu.Unlock()
	if err != nil {
		return err
	}
	lo, err := gocni.New(gocni.WithPluginDir([]string{r.cfg.CNIBinDir}), gocni.WithLoNetwork)
	if err != nil {
		return fmt.Errorf("runtime: load CNI loopback config: %w", err)
	}
	r.cniBridge, r.cniJob, r.cniLo = bridge, job, lo
	return nil
}

// writeIfChanged writes a CNI configuration file unless it holds b already.
func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("runtime: write CNI config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("runtime: write CNI config: %w", err)
	}
	return nil
}

// cniFor returns the CNI network of a mode with a bridge, and the bridge's
// name.
func (r *Runtime) cniFor(mode string) (gocni.CNI, string) {
	if mode == networkJob {
		return r.cniJob, r.cfg.JobBridgeName
	}
	return r.cniBridge, r.cfg.BridgeName
}

// netnsName is the network namespace (and CNI container id) of a container.
func (r *Runtime) netnsName(id string) string {
	return r.cfg.Namespace + "-" + id
}

func (r *Runtime) netnsPath(id string) string {
	return filepath.Join(r.cfg.NetNSDir, r.netnsName(id))
}

// createNetNS creates a new network namespace with its loopback up and
// mounts it at path (replacing a leftover one).
func createNetNS(path string) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create netns directory: %w", err)
	}
	_ = removeNetNS(path)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns mount point: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The thread changes namespace and is never unlocked: Go ends it
		// when this goroutine returns, so no other goroutine runs in it.
		goruntime.LockOSThread()
		if err = unix.Unshare(unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		if err = loopbackUp(); err != nil {
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err = unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			err = fmt.Errorf("mount network namespace at %s: %w", path, err)
		}
	}()
	wg.Wait()
	return err
}

// loopbackUp brings up the loopback interface of the calling thread's
// network namespace (what the CNI loopback plugin does, without running
// it).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up loopback: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: read its flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	return nil
}

// loopbackUpIn brings up the loopback interface of the network namespace
// mounted at nsPath.
func loopbackUpIn(nsPath string) error { return netns.Do(nsPath, loopbackUp) }

// removeNetNS unmounts and removes a network namespace; a missing one is
// fine.
func removeNetNS(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// enableForwarding turns on IPv4 forwarding, which the bridge needs.
func enableForwarding() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable net.ipv4.ip_forward (bridge networking needs it; run the agent as root or set the sysctl): %w", err)
	}
	return nil
}

func portMappings(ports []*ccv1.PortMapping) []gocni.PortMapping {
	var out []gocni.PortMapping
	for _, p := range ports {
		proto := strings.ToLower(p.GetProtocol())
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, gocni.PortMapping{
			HostPort:      p.GetHostPort(),
			ContainerPort: p.GetContainerPort(),
			Protocol:      proto,
		})
	}
	return out
}

// setupNetwork creates the container's network namespace and attaches it.
// It returns the namespace path and the container's IP (bridge mode).
//
// With userns, the network namespace is owned by a new user namespace
// mapped to it and mounted at usernsPath(nsPath) (the container joins
// both), so that the container can mount its own sysfs.
//
// With network none and no user namespace it makes nothing and returns
// "": runc creates the container's empty network namespace and brings up
// its loopback, as it does for every new network namespace, so nothing
// is left to mount, record or tear down.
func (r *Runtime) setupNetwork(ctx context.Context, id, mode string, ports []gocni.PortMapping, userns *usernsRange) (nsPath, ip string, err error) {
	if mode == networkNone && userns == nil {
		return "", "", nil
	}
	nsPath = r.netnsPath(id)
	if userns != nil {
		err = createUsernsNetNS(nsPath, *userns)
	} else {
		err = createNetNS(nsPath)
	}
	if err != nil {
		return "", "", fmt.Errorf("runtime: network namespace for %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = removeNetNS(nsPath)
			_ = removeNetNS(usernsPath(nsPath))
		}
	}()
	if mode == networkNone {
		if err := loopbackUpIn(nsPath); err != nil {
			return "", "", fmt.Errorf("runtime: bring up loopback of %s: %w", id, err)
		}
		return nsPath, "", nil
	}
	if err := enableForwarding(); err != nil {
		return "", "", fmt.Errorf("runtime: %w", err)
	}
	var opts []gocni.NamespaceOpts
	if len(ports) > 0 {
		opts = append(opts, gocni.WithCapabilityPortMap(ports))
	}
	cni, bridgeName := r.cniFor(mode)
	res, err := cni.Setup(ctx, r.netnsName(id), nsPath, opts...)
	if err != nil {
		_ = cni.Remove(ctx, r.netnsName(id), nsPath, opts...)
		return "", "", fmt.Errorf("runtime: attach %s to bridge %s (CNI in %s, config in %s): %w", id, bridgeName, r.cfg.CNIBinDir, filepath.Dir(r.confListPath()), err)
	}
	if mode == networkJob {
		// Jobs on one bridge do not reach each other even where bridged
		// traffic skips iptables (no br_netfilter).
		for name, c := range res.Interfaces {
			if c.Sandbox != "" || name == bridgeName {
				continue
			}
			if out, err := exec.CommandContext(ctx, "ip", "link", "set", "dev", name, "type", "bridge_slave", "isolated", "on").CombinedOutput(); err != nil {
				_ = cni.Remove(ctx, r.netnsName(id), nsPath, opts...)
				return "", "", fmt.Errorf("runtime: isolate %s's port %s on bridge %s: %w: %s", id, name, bridgeName, err, strings.TrimSpace(string(out)))
			}
		}
	}
	if c, ok := res.Interfaces["eth0"]; ok {
		for _, ipc := range c.IPConfigs {
			if ipc.IP.To4() != nil {
				ip = ipc.IP.String()
				break
			}
		}
	}
	return nsPath, ip, nil
}

// networkMark is the file, in a container's files directory, that
// records its network mode and ports (mode, a newline, the ports as
// encodePorts writes them) from before its network is set up until the
// container is removed: Remove finds in it what to detach when the
// container record is gone or was never made.
const networkMark = "network"

// markNetwork records a container's network before setupNetwork, synced,
// so that it outlives a crash or a reboot.
func (r *Runtime) markNetwork(id, mode string, ports []gocni.PortMapping) error {
	dir := r.filesDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("runtime: create %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, networkMark), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("runtime: record the network of %s: %w", id, err)
	}
	_, err = f.WriteString(mode + "\n" + encodePorts(ports) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("runtime: record the network of %s: %w", id, err)
	}
	return nil
}

// leftoverNetwork says what network to detach for a container id without
// a container record: the one its mark records; with no mark, none when
// no network namespace of it is mounted either (its creation never got
// as far), else bridge mode without ports (an agent before the mark).
func (r *Runtime) leftoverNetwork(id string) (mode string, ports []gocni.PortMapping, any bool) {
	if b, err := os.ReadFile(filepath.Join(r.filesDir(id), networkMark)); err == nil {
		m, p, _ := strings.Cut(string(b), "\n")
		if m != "" {
			return m, decodePorts(strings.TrimSpace(p)), true
		}
	}
	nsPath := r.netnsPath(id)
	for _, p := range []string{nsPath, usernsPath(nsPath)} {
		if _, err := os.Lstat(p); err == nil {
			return networkBridge, nil, true
		}
	}
	return "", nil, false
}

// teardownNetwork detaches the container (bridge mode) and removes its
// network namespace. It is idempotent.
func (r *Runtime) teardownNetwork(ctx context.Context, id, mode string, ports []gocni.PortMapping) error {
	nsPath := r.netnsPath(id)
	var errs []error
	if mode != networkNone {
		var opts []gocni.NamespaceOpts
		if len(ports) > 0 {
			opts = append(opts, gocni.WithCapabilityPortMap(ports))
		}
		cni, bridgeName := r.cniFor(mode)
		if err := cni.Remove(ctx, r.netnsName(id), nsPath, opts...); err != nil {
			errs = append(errs, fmt.Errorf("detach from bridge %s: %w", bridgeName, err))
		}
	} else if _, err := os.Lstat(nsPath); err == nil {
		// A namespace of network none an agent before this one made with
		// the CNI loopback plugin (a namespace made since has none of its
		// state, and runc's own has no mount).
		if err := r.cniLo.Remove(ctx, r.netnsName(id), nsPath); err != nil {
			errs = append(errs, fmt.Errorf("loopback teardown: %w", err))
		}
	}
	if err := removeNetNS(nsPath); err != nil {
		errs = append(errs, err)
	}
	if err := removeNetNS(usernsPath(nsPath)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runtime: network teardown of %s: %w", id, err)
	}
	return nil
}

// etcFiles writes the container's /etc/hosts and /etc/resolv.conf under
// StateDir and returns the bind mounts for them.
func (r *Runtime) etcFiles(id, name, ip, mode string) ([]specs.Mount, error) {
	dir := r.filesDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("runtime: create %s: %w", dir, err)
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if ip != "" {
		hosts.WriteString(ip + "\t" + name + "\n")
	} else {
		hosts.WriteString("127.0.1.1\t" + name + "\n")
	}
	files := map[string]string{"hosts": hosts.String()}
	if mode == networkBridge || mode == networkJob {
		if rc := hostResolvConf(); rc != "" {
			files["resolv.conf"] = rc
		}
	}
	var mounts []specs.Mount
	for _, n := range []string{"hosts", "resolv.conf"} {
		content, ok := files[n]
		if !ok {
			continue
		}
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("runtime: write %s: %w", p, err)
		}
		mounts = append(mounts, specs.Mount{
			Destination: "/etc/" + n,
			Type:        "bind",
			Source:      p,
			Options:     []string{"rbind", "rprivate", "rw"},
		})
	}
	return mounts, nil
}

// hostResolvConf returns the host's resolv.conf without loopback name
// servers (unreachable from a container), or "" when none is left.
func hostResolvConf() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	var out strings.Builder
	servers := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip == nil || ip.IsLoopback() {
				continue
			}
			servers++
		}
		out.WriteString(line + "\n")
	}
	if servers == 0 {
		return ""
	}
	return out.String()
}

// encodePorts and decodePorts keep published ports in a label.
func encodePorts(p []gocni.PortMapping) string {
	if len(p) == 0 {
		return ""
	}
	var parts []string
	for _, m := range p {
		parts = append(parts, strconv.Itoa(int(m.HostPort))+":"+strconv.Itoa(int(m.ContainerPort))+"/"+m.Protocol)
	}
	return strings.Join(parts, ",")
}

func decodePorts(s string) []gocni.PortMapping {
	var out []gocni.PortMapping
	for _, part := range strings.Split(s, ",") {
		hp, rest, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		cp, proto, _ := strings.Cut(rest, "/")
		h, err1 := strconv.Atoi(hp)
		c, err2 := strconv.Atoi(cp)
		if err1 != nil || err2 != nil {
			continue
		}
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, gocni.PortMapping{HostPort: int32(h), ContainerPort: int32(c), Protocol: proto})
	}
	return out
}
