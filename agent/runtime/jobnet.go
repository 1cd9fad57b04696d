package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The job network.
//
// A job sandbox that asks for network does not join the services' bridge:
// it joins a bridge of its own (JobBridgeName, JobSubnet; bridge plugin
// with a gateway and masquerading, host-local IPAM, no portmap and no
// firewall plugin), on an isolated port (jobs do not reach each other),
// whose traffic the agent filters in chains of its own, in the filter
// table:
//
//   - CC-JOB-FWD-<bridge>, jumped to from FORWARD for packets in from the
//     bridge: replies pass; DNS to the name servers of the resolv.conf jobs
//     get and the admin allow-list (JobEgressAllow) pass; the services'
//     subnet, the job subnet, and the loopback, link-local, private
//     (RFC 1918), shared (100.64/10), multicast and reserved ranges are
//     refused; the rest (the internet) passes, masqueraded.
//   - CC-JOB-HOST-<bridge>, jumped to from INPUT for packets in from the
//     bridge (any address of the node itself): replies, DNS to those name
//     servers and the allow-list pass; the rest is refused.
//   - CC-JOB-RET-<bridge>, jumped to from FORWARD for packets out to the
//     bridge: replies pass, new connections into jobs are refused.
//
// The job network has no IPv6; with IPv6 on the host the same chains in
// ip6tables refuse everything (the bridge's link-local addresses would
// reach the node otherwise). Refusals answer ICMP admin-prohibited, so a
// job fails fast instead of waiting for a timeout.
//
// New installs the chains: it creates or flushes and refills them
// atomically (iptables-restore --noflush) and adds the jumps, at the top
// of FORWARD and INPUT, when they are missing. Purge removes the jumps and
// the chains.

// Defaults of the job network.
const (
	DefaultJobBridgeName = "ccjob0"
	DefaultJobSubnet     = "10.89.0.0/24"
)

const networkJob = "job"

// blockedEgress are the IPv4 ranges a job may not reach unless the
// allow-list says so: this network, RFC 1918, shared address space,
// loopback, link-local (cloud metadata), multicast and reserved.
var blockedEgress = []string{
	"0.0.0.0/8",
	"10.0.0.0/8",
	"100.64.0.0/10",
	"127.0.0.0/8",
	"169.254.0.0/16",
	"172.16.0.0/12",
	"192.168.0.0/16",
	"224.0.0.0/4",
	"240.0.0.0/4",
}

// jobFirewall is what the job network's filter rules are made of.
type jobFirewall struct {
	// bridge is the job bridge's name.
	bridge string
	// jobSubnet and serviceSubnet are the job and the service bridges'
	// subnets.
	jobSubnet, serviceSubnet netip.Prefix
	// allow is the admin allow-list.
	allow []netip.Prefix
	// dns are the IPv4 name servers of the resolv.conf jobs get.
	dns []netip.Addr
}

// fwRule is one iptables rule: a family, a chain and the match and target
// arguments.
type fwRule struct {
	ipv6  bool
	chain string
	args  []string
}

func (f jobFirewall) fwdChain() string  { return "CC-JOB-FWD-" + f.bridge }
func (f jobFirewall) hostChain() string { return "CC-JOB-HOST-" + f.bridge }
func (f jobFirewall) retChain() string  { return "CC-JOB-RET-" + f.bridge }

func (f jobFirewall) chains() []string {
	return []string{f.fwdChain(), f.hostChain(), f.retChain()}
}

// jumps are the rules that send the bridge's packets to the chains, for
// IPv4 then IPv6, in the order they stand at the top of their chains.
func (f jobFirewall) jumps() []fwRule {
	var out []fwRule
	for _, v6 := range []bool{false, true} {
		out = append(out,
			fwRule{v6, "FORWARD", []string{"-i", f.bridge, "-m", "comment", "--comment", "cc job egress", "-j", f.fwdChain()}},
			fwRule{v6, "FORWARD", []string{"-o", f.bridge, "-m", "comment", "--comment", "cc job ingress", "-j", f.retChain()}},
			fwRule{v6, "INPUT", []string{"-i", f.bridge, "-m", "comment", "--comment", "cc job to host", "-j", f.hostChain()}},
		)
	}
	return out
}

// rules are the contents of the chains, in order, IPv4 then IPv6.
func (f jobFirewall) rules() []fwRule {
	established := []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}
	reject4 := []string{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}
	reject6 := []string{"-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"}
	// passFor is what passes before the refusals: DNS and the allow-list.
	passFor := func(chain string) []fwRule {
		var pass []fwRule
		for _, ns := range f.dns {
			for _, proto := range []string{"udp", "tcp"} {
				pass = append(pass, fwRule{false, chain, []string{"-d", ns.String() + "/32", "-p", proto, "-m", proto, "--dport", "53", "-j", "ACCEPT"}})
			}
		}
		for _, p := range f.allow {
			pass = append(pass, fwRule{false, chain, []string{"-d", p.String(), "-j", "ACCEPT"}})
		}
		return pass
	}

	var out []fwRule
	// Out of the bridge, through the node.
	fwd := f.fwdChain()
	out = append(out, fwRule{false, fwd, established})
	out = append(out, passFor(fwd)...)
	for _, p := range []netip.Prefix{f.serviceSubnet, f.jobSubnet} {
		if p.IsValid() {
			out = append(out, fwRule{false, fwd, append([]string{"-d", p.String()}, reject4...)})
		}
	}
	for _, c := range blockedEgress {
		out = append(out, fwRule{false, fwd, append([]string{"-d", c}, reject4...)})
	}
	out = append(out, fwRule{false, fwd, []string{"-j", "ACCEPT"}})
	// To the node itself.
	host := f.hostChain()
	out = append(out, fwRule{false, host, established})
	out = append(out, passFor(host)...)
	out = append(out, fwRule{false, host, reject4})
	// Into the bridge.
	ret := f.retChain()
	out = append(out,
		fwRule{false, ret, established},
		fwRule{false, ret, reject4},
	)
	// No IPv6 at all.
	for _, c := range []string{fwd, host, ret} {
		out = append(out, fwRule{true, c, reject6})
	}
	return out
}

// restoreInput is the iptables-restore --noflush input that (re)creates,
// flushes and fills the chains of one family.
func (f jobFirewall) restoreInput(ipv6 bool) []byte {
	var b bytes.Buffer
	b.WriteString("*filter\n")
	for _, c := range f.chains() {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, r := range f.rules() {
		if r.ipv6 == ipv6 {
			fmt.Fprintf(&b, "-A %s %s\n", r.chain, strings.Join(r.args, " "))
		}
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

// iptablesBin finds an iptables tool (iptables, ip6tables, their -restore
// forms), also in /usr/sbin and /sbin when PATH lacks them.
func iptablesBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (install Debian's iptables)", name)
}

// hostHasIPv6 reports whether the kernel has IPv6.
func hostHasIPv6() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}

func families() []bool {
	if hostHasIPv6() {
		return []bool{false, true}
	}
	return []bool{false}
}

func tool(ipv6 bool) string {
	if ipv6 {
		return "ip6tables"
	}
	return "iptables"
}

// runIPT runs an iptables tool with -w (wait for the xtables lock).
func runIPT(name string, stdin []byte, args ...string) error {
	bin, err := iptablesBin(name)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, append([]string{"-w"}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// install creates or refills the chains and adds the missing jumps.
func (f jobFirewall) install() error {
	for _, v6 := range families() {
		if err := runIPT(tool(v6)+"-restore", f.restoreInput(v6), "--noflush"); err != nil {
			return fmt.Errorf("runtime: install the job network's filter rules: %w", err)
		}
	}
	jumps := f.jumps()
	// Inserted at the top in reverse, so they stand in order.
	for i := len(jumps) - 1; i >= 0; i-- {
		j := jumps[i]
		if j.ipv6 && !hostHasIPv6() {
			continue
		}
		if runIPT(tool(j.ipv6), nil, append([]string{"-C", j.chain}, j.args...)...) == nil {
			continue
		}
		if err := runIPT(tool(j.ipv6), nil, append([]string{"-I", j.chain, "1"}, j.args...)...); err != nil {
			return fmt.Errorf("runtime: install the job network's filter rules: %w", err)
		}
	}
	return nil
}

// remove deletes the jumps and the chains; missing ones are fine.
func (f jobFirewall) remove() error {
	var errs []error
	for _, j := range f.jumps() {
		if j.ipv6 && !hostHasIPv6() {
			continue
		}
		for range 16 { // a jump added twice by hand
			if runIPT(tool(j.ipv6), nil, append([]string{"-C", j.chain}, j.args...)...) != nil {
				break
			}
			if err := runIPT(tool(j.ipv6), nil, append([]string{"-D", j.chain}, j.args...)...); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	for _, v6 := range families() {
		for _, c := range f.chains() {
			if runIPT(tool(v6), nil, "-n", "-L", c) != nil {
				continue // no such chain
			}
			if err := runIPT(tool(v6), nil, "-F", c); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := runIPT(tool(v6), nil, "-X", c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runtime: remove the job network's filter rules: %w", err)
	}
	return nil
}

// SetJobEgressAllow replaces the job network's egress allow-list (a reload
// of the agent's configuration): the filter chains are refilled at once,
// for the jobs running too. An entry that is not an IPv4 CIDR or address
// is an error, and the list in force stays.
func (r *Runtime) SetJobEgressAllow(allow []string) error {
	r.fwMu.Lock()
	defer r.fwMu.Unlock()
	cfg := r.cfg
	cfg.JobEgressAllow = allow
	fw, err := jobFirewallFor(cfg)
	if err != nil {
		return err
	}
	if err := fw.install(); err != nil {
		// Refill the chains as they were.
		if rerr := r.jobFW.install(); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	r.jobFW = fw
	return nil
}

// jobFirewallFor builds the job network's filter from the configuration.
func jobFirewallFor(cfg Config) (jobFirewall, error) {
	f := jobFirewall{bridge: cfg.JobBridgeName}
	var err error
	if f.jobSubnet, err = netip.ParsePrefix(cfg.JobSubnet); err != nil || !f.jobSubnet.Addr().Is4() {
		return f, fmt.Errorf("runtime: job subnet %q is not an IPv4 CIDR", cfg.JobSubnet)
	}
	f.jobSubnet = f.jobSubnet.Masked()
	if f.serviceSubnet, err = netip.ParsePrefix(cfg.Subnet); err != nil {
		return f, fmt.Errorf("runtime: subnet %q is not a CIDR", cfg.Subnet)
	}
	f.serviceSubnet = f.serviceSubnet.Masked()
	if f.jobSubnet.Overlaps(f.serviceSubnet) {
		return f, fmt.Errorf("runtime: the job subnet %s overlaps the container subnet %s", f.jobSubnet, f.serviceSubnet)
	}
	if cfg.JobBridgeName == cfg.BridgeName {
		return f, fmt.Errorf("runtime: the job bridge must differ from the container bridge %s", cfg.BridgeName)
	}
	// iptables chain names are at most 28 characters: "CC-JOB-HOST-" and
	// a 15-character interface name fit.
	if n := len(cfg.JobBridgeName); n == 0 || n > 15 || strings.ContainsAny(cfg.JobBridgeName, " /:\t") {
		return f, fmt.Errorf("runtime: job bridge name %q must be an interface name (1 to 15 characters)", cfg.JobBridgeName)
	}
	for _, s := range cfg.JobEgressAllow {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return f, fmt.Errorf("runtime: job egress allow-list entry %q is not a CIDR or an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.Addr().Is4() {
			return f, fmt.Errorf("runtime: job egress allow-list entry %q: the job network is IPv4 only", s)
		}
		f.allow = append(f.allow, p.Masked())
	}
	f.dns = resolvConfServers(hostResolvConf())
	return f, nil
}

// resolvConfServers returns the IPv4 name servers of a resolv.conf.
func resolvConfServers(rc string) []netip.Addr {
	var out []netip.Addr
	for _, line := range strings.Split(rc, "\n") {
		fl := strings.Fields(line)
		if len(fl) >= 2 && fl[0] == "nameserver" {
			if a, err := netip.ParseAddr(fl[1]); err == nil && a.Is4() {
				out = append(out, a)
			}
		}
	}
	return out
}

func (r *Runtime) jobConfListPath() string {
	return filepath.Join(r.cfg.StateDir, "cni", r.cfg.JobBridgeName+".conflist")
}

// jobConfList is the CNI configuration of the job network.
func (r *Runtime) jobConfList() ([]byte, error) {
	if _, _, err := net.ParseCIDR(r.cfg.JobSubnet); err != nil {
		return nil, fmt.Errorf("runtime: job subnet %q is not a CIDR: %w", r.cfg.JobSubnet, err)
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       r.cfg.JobBridgeName,
		"plugins": []any{
			map[string]any{
				"type":      "bridge",
				"bridge":    r.cfg.JobBridgeName,
				"isGateway": true,
				"ipMasq":    true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": r.cfg.JobSubnet}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}
