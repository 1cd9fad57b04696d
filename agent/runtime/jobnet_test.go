package runtime

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestJobFirewallRules(t *testing.T) {
	f := jobFirewall{
		bridge:        "ccjob0",
		jobSubnet:     netip.MustParsePrefix("10.89.0.0/24"),
		serviceSubnet: netip.MustParsePrefix("10.213.0.0/24"),
		allow:         []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("169.254.1.1/32")},
		dns:           []netip.Addr{netip.MustParseAddr("10.255.255.53")},
	}
	var got []string
	for _, r := range f.rules() {
		fam := "4"
		if r.ipv6 {
			fam = "6"
		}
		got = append(got, fam+" "+r.chain+" "+strings.Join(r.args, " "))
	}
	rej := "-j REJECT --reject-with icmp-admin-prohibited"
	est := "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	want := []string{
		"4 CC-JOB-FWD-ccjob0 " + est,
		"4 CC-JOB-FWD-ccjob0 -d 10.255.255.53/32 -p udp -m udp --dport 53 -j ACCEPT",
		"4 CC-JOB-FWD-ccjob0 -d 10.255.255.53/32 -p tcp -m tcp --dport 53 -j ACCEPT",
		"4 CC-JOB-FWD-ccjob0 -d 10.1.2.0/24 -j ACCEPT",
		"4 CC-JOB-FWD-ccjob0 -d 169.254.1.1/32 -j ACCEPT",
		"4 CC-JOB-FWD-ccjob0 -d 10.213.0.0/24 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 10.89.0.0/24 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 0.0.0.0/8 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 10.0.0.0/8 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 100.64.0.0/10 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 127.0.0.0/8 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 169.254.0.0/16 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 172.16.0.0/12 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 192.168.0.0/16 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 224.0.0.0/4 " + rej,
		"4 CC-JOB-FWD-ccjob0 -d 240.0.0.0/4 " + rej,
		"4 CC-JOB-FWD-ccjob0 -j ACCEPT",
		"4 CC-JOB-HOST-ccjob0 " + est,
		"4 CC-JOB-HOST-ccjob0 -d 10.255.255.53/32 -p udp -m udp --dport 53 -j ACCEPT",
		"4 CC-JOB-HOST-ccjob0 -d 10.255.255.53/32 -p tcp -m tcp --dport 53 -j ACCEPT",
		"4 CC-JOB-HOST-ccjob0 -d 10.1.2.0/24 -j ACCEPT",
		"4 CC-JOB-HOST-ccjob0 -d 169.254.1.1/32 -j ACCEPT",
		"4 CC-JOB-HOST-ccjob0 " + rej,
		"4 CC-JOB-RET-ccjob0 " + est,
		"4 CC-JOB-RET-ccjob0 " + rej,
		"6 CC-JOB-FWD-ccjob0 -j REJECT --reject-with icmp6-adm-prohibited",
		"6 CC-JOB-HOST-ccjob0 -j REJECT --reject-with icmp6-adm-prohibited",
		"6 CC-JOB-RET-ccjob0 -j REJECT --reject-with icmp6-adm-prohibited",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	var jumps []string
	for _, j := range f.jumps() {
		if !j.ipv6 {
			jumps = append(jumps, j.chain+" "+strings.Join(j.args, " "))
		}
	}
	wantJumps := []string{
		"FORWARD -i ccjob0 -m comment --comment cc job egress -j CC-JOB-FWD-ccjob0",
		"FORWARD -o ccjob0 -m comment --comment cc job ingress -j CC-JOB-RET-ccjob0",
		"INPUT -i ccjob0 -m comment --comment cc job to host -j CC-JOB-HOST-ccjob0",
	}
	if strings.Join(jumps, "\n") != strings.Join(wantJumps, "\n") {
		t.Errorf("jumps:\n%s\nwant:\n%s", strings.Join(jumps, "\n"), strings.Join(wantJumps, "\n"))
	}

	in := string(f.restoreInput(false))
	if !strings.HasPrefix(in, "*filter\n:CC-JOB-FWD-ccjob0 - [0:0]\n:CC-JOB-HOST-ccjob0 - [0:0]\n:CC-JOB-RET-ccjob0 - [0:0]\n-A CC-JOB-FWD-ccjob0 "+est+"\n") ||
		!strings.HasSuffix(in, "-A CC-JOB-RET-ccjob0 "+rej+"\nCOMMIT\n") || strings.Contains(in, "icmp6") {
		t.Errorf("restore input:\n%s", in)
	}
}

func TestJobFirewallConfig(t *testing.T) {
	base := Config{BridgeName: "cc0", Subnet: "10.213.0.0/24", JobBridgeName: "ccjob0", JobSubnet: "10.89.0.0/24"}
	f, err := jobFirewallFor(Config{BridgeName: "cc0", Subnet: "10.213.0.0/24", JobBridgeName: "ccjob0", JobSubnet: "10.89.0.9/24", JobEgressAllow: []string{"192.168.1.7", " 10.1.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.jobSubnet.String() != "10.89.0.0/24" || fmt.Sprint(f.allow) != "[192.168.1.7/32 10.1.0.0/16]" {
		t.Errorf("firewall %+v", f)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.JobSubnet = "10.213.0.128/25" }, "overlaps"},
		{func(c *Config) { c.JobSubnet = "fd00::/64" }, "IPv4"},
		{func(c *Config) { c.JobBridgeName = "cc0" }, "differ"},
		{func(c *Config) { c.JobBridgeName = "a-very-long-bridge" }, "interface name"},
		{func(c *Config) { c.JobEgressAllow = []string{"nope"} }, "not a CIDR"},
		{func(c *Config) { c.JobEgressAllow = []string{"fd00::/8"} }, "IPv4 only"},
	} {
		c := base
		tc.mod(&c)
		if _, err := jobFirewallFor(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", c, err, tc.want)
		}
	}
	if got := resolvConfServers("search x\nnameserver 10.0.0.2\nnameserver ::1\nnameserver 1.1.1.1 \n"); fmt.Sprint(got) != "[10.0.0.2 1.1.1.1]" {
		t.Errorf("name servers %v", got)
	}
}

// ipCmd runs ip(8).
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// listenInNetNS listens on 0.0.0.0:port inside the network namespace at
// nsPath and answers every connection with a line.
func listenInNetNS(t *testing.T, nsPath string, port int) {
	t.Helper()
	var ln net.Listener
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		goruntime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var fd int
		if fd, err = unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return
		}
		defer unix.Close(fd)
		if err = unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return
		}
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	}()
	wg.Wait()
	if err != nil {
		t.Fatalf("listen in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveHello(ln)
}

func serveHello(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte("hello\n"))
		c.Close()
	}
}

// TestJobEgress runs a job with network and checks what it reaches: not
// the node (its job bridge gateway, another of its addresses), not
// 169.254.169.254, not a private address, but a private address on the
// allow-list.
//
// The "outside" is a network namespace of the test's behind a veth pair:
// it holds 169.254.169.254, 10.250.N.2 and 10.250.N.3, and a policy
// routing rule sends there only the packets that come in from the test's
// bridges, so nothing leaves the host.
func TestJobEgress(t *testing.T) {
	cfg := testConfig(t)
	_, jobNet, _ := net.ParseCIDR(cfg.JobSubnet)
	n := int(jobNet.IP.To4()[2])
	allowed, denied := fmt.Sprintf("10.250.%d.2", n), fmt.Sprintf("10.250.%d.3", n)
	hostSide, outSide := fmt.Sprintf("10.251.%d.1", n), fmt.Sprintf("10.251.%d.2", n)
	cfg.JobEgressAllow = []string{allowed + "/32"}
	jobGateway := fmt.Sprintf("10.89.%d.1", n)

	// The outside.
	suffix := randHex(3)
	nsName := "cc-test-out-" + suffix
	nsPath := "/var/run/netns/" + nsName
	if err := createNetNS(nsPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeNetNS(nsPath) })
	vh, vo := "cco"+suffix, "cci"+suffix
	ipCmd(t, "link", "add", vh, "type", "veth", "peer", "name", vo)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", vh).Run() })
	ipCmd(t, "link", "set", vo, "netns", nsName)
	ipCmd(t, "addr", "add", hostSide+"/30", "dev", vh)
	ipCmd(t, "link", "set", vh, "up")
	// Replies from the outside come in on the veth, which only the policy
	// rule routes to.
	_ = os.WriteFile("/proc/sys/net/ipv4/conf/"+vh+"/rp_filter", []byte("0"), 0o644)
	ipCmd(t, "-n", nsName, "addr", "add", outSide+"/30", "dev", vo)
	ipCmd(t, "-n", nsName, "link", "set", vo, "up")
	ipCmd(t, "-n", nsName, "link", "set", "lo", "up")
	for _, a := range []string{"169.254.169.254", allowed, denied} {
		ipCmd(t, "-n", nsName, "addr", "add", a+"/32", "dev", "lo")
	}
	table := fmt.Sprint(40000 + n)
	for _, a := range []string{"169.254.169.254/32", fmt.Sprintf("10.250.%d.0/24", n)} {
		ipCmd(t, "route", "add", a, "via", outSide, "dev", vh, "table", table)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "route", "flush", "table", table).Run() })
	// Packets from the job bridge (and the container bridge, where jobs
	// were before) go to the outside; nothing else changes.
	for _, br := range []string{cfg.JobBridgeName, cfg.BridgeName} {
		ipCmd(t, "rule", "add", "iif", br, "lookup", table)
		t.Cleanup(func() { _ = exec.Command("ip", "rule", "del", "iif", br, "lookup", table).Run() })
	}
	port := 20000 + int(randByte())*64 + n%64
	listenInNetNS(t, nsPath, port)
	// The node: every address, the test's veth end and the bridge
	// gateways among them.
	ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveHello(ln)

	r, _ := newTestRuntimeWith(t, cfg)
	targets := []string{jobGateway, hostSide, "169.254.169.254", denied, allowed}
	script := fmt.Sprintf(`for a in %s; do if /bin/busybox nc -w 2 $a %d </dev/null 2>/dev/null | grep -q hello; then echo "$a reached"; else echo "$a refused"; fi; done`,
		strings.Join(targets, " "), port)
	s := sandboxSpec("/bin/sh", "-c", script)
	s.Network = ccv1.NetworkMode_NETWORK_MODE_BRIDGE
	_, o, stdout, stderr := runJob(t, r, Task{Spec: s})
	if o.ExitCode != 0 {
		t.Fatalf("job: %+v; stdout %q stderr %q", o, stdout, stderr)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		if a, res, ok := strings.Cut(sc.Text(), " "); ok {
			got[a] = res
		}
	}
	for _, a := range targets {
		want := "refused"
		if a == allowed {
			want = "reached"
		}
		if got[a] != want {
			t.Errorf("%s: %q, want %s (job on %s)", a, got[a], want, o.IP)
		}
	}
	if ip := net.ParseIP(o.IP); ip == nil || !jobNet.Contains(ip) {
		t.Errorf("job address %q is not on the job subnet %s", o.IP, cfg.JobSubnet)
	}
	// Its port on the bridge is isolated: no job reaches another one.
	if out, err := exec.Command("ip", "-d", "link", "show", "master", cfg.JobBridgeName).CombinedOutput(); err != nil || !strings.Contains(string(out), "isolated on") {
		t.Errorf("the job's port on %s is not isolated (%v):\n%s", cfg.JobBridgeName, err, out)
	}
	// The chains are in place now; another start refills them and adds
	// no jump twice. Purge (in the cleanup) removes them, which
	// cleanupRuntime checks.
	rules := func() string {
		out, err := exec.Command("iptables", "-w", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables -S: %v: %s", err, out)
		}
		var mine []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "-"+cfg.JobBridgeName) {
				mine = append(mine, l)
			}
		}
		return strings.Join(mine, "\n")
	}
	before := rules()
	if strings.Count(before, "-A FORWARD -i "+cfg.JobBridgeName) != 1 || strings.Count(before, "-A INPUT -i "+cfg.JobBridgeName) != 1 ||
		!strings.Contains(before, "-A CC-JOB-FWD-"+cfg.JobBridgeName+" -d 169.254.0.0/16 -j REJECT") {
		t.Errorf("job rules:\n%s", before)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
	if after := rules(); after != before {
		t.Errorf("rules after another start:\n%s\nbefore:\n%s", after, before)
	}

	// A reload swaps the allow-list: the other address is reached now.
	if err := r.SetJobEgressAllow([]string{"nonsense"}); err == nil {
		t.Fatal("a bad allow-list entry was taken")
	}
	if err := r.SetJobEgressAllow([]string{denied}); err != nil {
		t.Fatal(err)
	}
	_, o, stdout, stderr = runJob(t, r, Task{Spec: s})
	if o.ExitCode != 0 || !strings.Contains(stdout, denied+" reached") || !strings.Contains(stdout, allowed+" refused") {
		t.Fatalf("job after the reload: %+v; stdout %q stderr %q", o, stdout, stderr)
	}
}

func randByte() byte {
	b := randHex(1)
	var v byte
	fmt.Sscanf(b, "%x", &v)
	return v
}
