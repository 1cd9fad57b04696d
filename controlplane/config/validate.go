package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/containercodes/cc/internal/pki"
)

// Validate checks every field and returns nil or a Problems value listing
// all the problems found. Every Problem it returns has Line 0. The only files
// it reads are tls_cert_file and tls_key_file, which it checks as the server
// would load them (see pki.LoadOperatorCert).
func (c Config) Validate() error {
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if c.DataDir == "" {
		add("data_dir", "required (set --data-dir or data_dir in the config file)")
	}
	if strings.TrimSpace(c.Name) == "" {
		add("name", "must not be empty; set it to a human name for this server, like \"cp-1\"")
	}
	if msg := checkListenAddr(c.APIAddr, "0.0.0.0:7443"); msg != "" {
		add("api_addr", "%s", msg)
	}
	if msg := checkListenAddr(c.RaftAddr, "0.0.0.0:7444"); msg != "" {
		add("raft_addr", "%s", msg)
	}
	if c.MetricsAddr != "" {
		if msg := checkListenAddr(c.MetricsAddr, "127.0.0.1:7446"); msg != "" {
			add("metrics_addr", "%s", msg)
		}
	}
	if c.RaftAdvertise != "" {
		if msg := checkAdvertiseAddr(c.RaftAdvertise); msg != "" {
			add("raft_advertise", "%s", msg)
		}
	}
	if c.APIAdvertise != "" {
		if msg := checkAdvertiseAddr(c.APIAdvertise); msg != "" {
			add("api_advertise", "%s", msg)
		}
	}
	switch {
	case c.Join != "" && c.Bootstrap:
		add("join", "cannot be used with bootstrap: a server either creates a cluster or joins one")
	case c.Join != "" && c.JoinToken == "":
		add("join_token", "required with join: create one with `ccctl token create --role server`")
	case c.Join != "":
		if _, _, err := net.SplitHostPort(c.Join); err != nil {
			add("join", "%q is not HOST:PORT, e.g. 10.0.0.5:7443", c.Join)
		}
	}
	for i, san := range c.TLSSANs {
		switch {
		case san == "":
			add("tls_sans", "entry %d is empty; remove it or put a DNS name or IP there", i+1)
		case strings.IndexFunc(san, unicode.IsSpace) >= 0:
			add("tls_sans", "entry %d (%q) contains a space; a DNS name or IP has none, so split or fix it", i+1, san)
		}
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		add("tls_cert_file", "is set without tls_key_file: set tls_key_file to the certificate's private key file, or remove tls_cert_file")
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		add("tls_key_file", "is set without tls_cert_file: set tls_cert_file to the certificate file (with its chain), or remove tls_key_file")
	case c.TLSCertFile != "":
		if _, err := pki.LoadOperatorCert(c.TLSCertFile, c.TLSKeyFile, time.Now()); err != nil {
			var fe *pki.CertFileError
			switch {
			case errors.As(err, &fe) && fe.KeyFile:
				add("tls_key_file", "%s", fe.Error())
			case errors.As(err, &fe):
				add("tls_cert_file", "%s", fe.Error())
			default:
				add("tls_cert_file", "%v", err)
			}
		}
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not a log level; use one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "%q is not a log format; use text or json", c.Log.Format)
	}

	if c.NodeDownAfter.Duration < time.Second {
		add("node_down_after", "%s is too short; it must be at least 1s (agents beat every 3s; 10s is the default)", c.NodeDownAfter.Duration)
	}

	if c.BlobGC.Interval.Duration < time.Second {
		add("blob_gc.interval", "%s is too short; it must be at least 1s (default 10m)", c.BlobGC.Interval.Duration)
	}
	if c.BlobGC.Grace.Duration < time.Second {
		add("blob_gc.grace", "%s is too short; it must be at least 1s, longer than an upload takes (default 1h)", c.BlobGC.Grace.Duration)
	}

	for i, a := range c.Webhooks.Allow {
		t := strings.TrimSpace(a)
		p, err := netip.ParsePrefix(t)
		switch {
		case err != nil:
			if ip, aerr := netip.ParseAddr(t); aerr == nil {
				add("webhooks.allow", "entry %d (%q) is an address, not a prefix: write %q for that one address", i+1, a, t+"/"+strconv.Itoa(ip.BitLen()))
			} else {
				add("webhooks.allow", "entry %d (%q) is not a CIDR prefix; use one like \"10.0.0.0/8\" or \"fd00::/8\"", i+1, a)
			}
		case p != p.Masked():
			add("webhooks.allow", "entry %d (%q) has bits set after the prefix length: did you mean %q?", i+1, a, p.Masked().String())
		}
	}

	if !(c.JoinLimit.PerMinute > 0) {
		add("join_limit.per_minute", "%v: must be more than 0, like 10 (failed join attempts per minute and source address)", c.JoinLimit.PerMinute)
	}
	if c.MaxOutputDownloads < 1 {
		add("max_output_downloads", "%d: must be at least 1, like 4 (open job output downloads per token)", c.MaxOutputDownloads)
	}
	if c.JoinLimit.Burst < 1 {
		add("join_limit.burst", "%d: must be at least 1, like 20", c.JoinLimit.Burst)
	}

	rl := c.RateLimit
	for _, b := range []struct {
		key   string
		rate  float64
		burst int
		unit  string
	}{
		{"admin", rl.AdminPerSecond, rl.AdminBurst, "per_second"},
		{"viewer", rl.ViewerPerSecond, rl.ViewerBurst, "per_second"},
		{"jobs", rl.JobsPerSecond, rl.JobsBurst, "per_second"},
		{"address", rl.AddressPerSecond, rl.AddressBurst, "per_second"},
		{"failed_auth", rl.FailedAuthPerMinute, rl.FailedAuthBurst, "per_minute"},
	} {
		switch {
		case !(b.rate >= 0) || math.IsInf(b.rate, 0):
			add("rate_limit."+b.key+"_"+b.unit, "%v: must be 0 (no limit) or more", b.rate)
		case b.rate > 0 && b.burst < 1:
			add("rate_limit."+b.key+"_burst", "%d: must be at least 1 when %s_%s is set (calls at once)", b.burst, b.key, b.unit)
		}
	}

	ps = append(ps, c.Tracing.Check()...)

	r := c.Raft
	atLeast := func(key string, d Duration, lo time.Duration) bool {
		if d.Duration < lo {
			add(key, "%s is too short; it must be at least %s", d.Duration, lo)
			return false
		}
		return true
	}
	hbOK := atLeast("raft.heartbeat_timeout", r.HeartbeatTimeout, 50*time.Millisecond)
	if atLeast("raft.election_timeout", r.ElectionTimeout, 50*time.Millisecond) && hbOK &&
		r.ElectionTimeout.Duration < r.HeartbeatTimeout.Duration {
		add("raft.election_timeout", "must be at least heartbeat_timeout (%s); raise it or lower heartbeat_timeout",
			r.HeartbeatTimeout.Duration)
	}
	if atLeast("raft.leader_lease_timeout", r.LeaderLeaseTimeout, 10*time.Millisecond) && hbOK &&
		r.LeaderLeaseTimeout.Duration > r.HeartbeatTimeout.Duration {
		add("raft.leader_lease_timeout", "must be at most heartbeat_timeout (%s); lower it or raise heartbeat_timeout",
			r.HeartbeatTimeout.Duration)
	}
	if r.CommitTimeout.Duration <= 0 {
		add("raft.commit_timeout", "must be more than 0, like \"50ms\"")
	}
	atLeast("raft.snapshot_interval", r.SnapshotInterval, time.Second)
	if r.SnapshotThreshold < 1 {
		add("raft.snapshot_threshold", "must be at least 1, like 8192")
	}

	if len(ps) == 0 {
		return nil
	}
	return ps
}

// splitAddr splits host:port and parses the port. It returns a message for
// the user when addr is not host:port with a numeric port in 0-65535.
func splitAddr(addr, example string) (host string, port int, msg string) {
	if addr == "" {
		return "", 0, fmt.Sprintf("must not be empty; use host:port, like %q", example)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		var why string
		switch {
		case strings.Contains(err.Error(), "missing port"):
			why = "it has no port"
		case strings.Contains(err.Error(), "too many colons"):
			why = "it has too many colons (put an IPv6 address in brackets, like \"[::1]:7443\")"
		default:
			why = "it is not host:port"
		}
		return "", 0, fmt.Sprintf("%q is not a valid address: %s; use host:port, like %q", addr, why, example)
	}
	n, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Sprintf("port %q in %q is not a number; use a port number in 0-65535", portStr, addr)
	}
	if n < 0 || n > 65535 {
		return "", 0, fmt.Sprintf("port %d in %q is out of range; use a port number in 0-65535", n, addr)
	}
	if strings.IndexFunc(host, unicode.IsSpace) >= 0 {
		return "", 0, fmt.Sprintf("host %q in %q contains a space; use a host name or IP", host, addr)
	}
	return host, n, ""
}

// checkListenAddr checks an address to listen on: host:port, port 0-65535,
// where port 0 means pick a free port and an empty host means all interfaces.
func checkListenAddr(addr, example string) string {
	_, _, msg := splitAddr(addr, example)
	return msg
}

// checkAdvertiseAddr checks an address other servers dial: an IP that is not
// unspecified, with a port that is not 0.
func checkAdvertiseAddr(addr string) string {
	const example = "10.0.0.5:7444"
	host, port, msg := splitAddr(addr, example)
	if msg != "" {
		return msg
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Sprintf("host %q in %q is not an IP address; other servers dial it, so use this server's IP, like %q", host, addr, example)
	}
	if ip.IsUnspecified() {
		return fmt.Sprintf("%q cannot be dialed by other servers; use this server's own IP, like %q", addr, example)
	}
	if port == 0 {
		return fmt.Sprintf("port 0 in %q cannot be dialed by other servers; use the real raft port, like %q", addr, example)
	}
	return ""
}

// Check lists what is wrong with the tracing section (Validate includes
// it; a reload of the section alone uses it).
func (t TracingConfig) Check() Problems {
	var ps Problems
	if t.Endpoint != "" {
		const example = "127.0.0.1:4317"
		host, port, msg := splitAddr(t.Endpoint, example)
		switch {
		case msg != "":
			ps = append(ps, Problem{Key: "tracing.endpoint", Msg: msg + " (the OTLP/gRPC receiver)"})
		case host == "":
			ps = append(ps, Problem{Key: "tracing.endpoint", Msg: fmt.Sprintf("%q has no host; use the OTLP/gRPC receiver's host name or IP, like %q", t.Endpoint, example)})
		case port == 0:
			ps = append(ps, Problem{Key: "tracing.endpoint", Msg: fmt.Sprintf("port 0 in %q cannot be dialed; use the receiver's port (OTLP/gRPC: 4317)", t.Endpoint)})
		}
	}
	if !(t.SampleRatio >= 0 && t.SampleRatio <= 1) {
		ps = append(ps, Problem{Key: "tracing.sample_ratio", Msg: fmt.Sprintf("%v is not a share from 0 to 1; use 1 to keep every trace, 0.1 for one in ten", t.SampleRatio)})
	}
	return ps
}
