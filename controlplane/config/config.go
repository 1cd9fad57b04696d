// Package config holds the configuration of cc-controlplane: one Config struct
// filled from defaults, a TOML file and flags, with validation that says what
// is wrong, line by line.
package config

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a string such as "1s",
// "500ms" or "2m".
type Duration struct{ time.Duration }

// UnmarshalText parses a duration string such as "1s".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%q is not a duration; use a duration string like \"1s\", \"500ms\" or \"2m\"", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a string such as "1s".
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// Config is the whole configuration of cc-controlplane.
type Config struct {
	// DataDir is where the server keeps its raft log, snapshots and keys.
	DataDir string `toml:"data_dir"`
	// Bootstrap makes this server start a new single-server cluster.
	Bootstrap bool `toml:"bootstrap"`
	// Name is the human name of this server; it defaults to the host name.
	Name string `toml:"name"`
	// APIAddr is the host:port the API listens on; port 0 picks a free port.
	APIAddr string `toml:"api_addr"`
	// RaftAddr is the host:port raft listens on; port 0 picks a free port.
	RaftAddr string `toml:"raft_addr"`
	// RaftAdvertise is the IP:port other servers use to reach this one's
	// raft; empty means not set.
	RaftAdvertise string `toml:"raft_advertise"`
	// APIAdvertise is the IP:port other servers and clients use to reach
	// this one's API; empty means derived from api_addr and raft_advertise.
	APIAdvertise string `toml:"api_advertise"`
	// Join is the API address of a server of the cluster to join (with
	// JoinToken, a server join token) on the first start.
	Join string `toml:"join"`
	// JoinToken is the server join token (`ccctl token create --role server`).
	JoinToken string `toml:"join_token"`
	// TLSSANs are extra DNS names or IPs for the server certificate.
	TLSSANs []string `toml:"tls_sans"`
	// TLSCertFile is a PEM certificate (with its chain) an operator supplies
	// for the API port, from a CA browsers trust; empty means none. The API
	// presents it to clients that ask for one of its DNS names, and the
	// cluster CA's certificate to the others (agents, servers, ccctl with a
	// pinned CA). It is read again when it changes on disk.
	TLSCertFile string `toml:"tls_cert_file"`
	// TLSKeyFile is the PEM private key of TLSCertFile; set both or neither.
	TLSKeyFile string `toml:"tls_key_file"`
	// NodeDownAfter is how long a node may go without a heartbeat to any
	// server before the leader marks it down and moves its service tasks
	// (agents beat every 3s).
	NodeDownAfter Duration `toml:"node_down_after"`
	// AuditFile, when set, is a file this server appends the audit trail
	// to as JSON lines (for a SIEM): every audit record it applies, and
	// every call it refused before raft (a bad credential or role).
	AuditFile string `toml:"audit_file"`
	// MetricsAddr, when set, is a host:port where the server also serves
	// its Prometheus metrics (GET /metrics) over plain HTTP without
	// authentication; empty means none. The API port serves them to
	// metrics, viewer and admin tokens either way.
	MetricsAddr string `toml:"metrics_addr"`

	Log    LogConfig    `toml:"log"`
	Raft   RaftConfig   `toml:"raft"`
	BlobGC BlobGCConfig `toml:"blob_gc"`
	ACME   ACMEConfig   `toml:"acme"`
	// Webhooks says where jobs' completion webhooks may be sent.
	Webhooks WebhooksConfig `toml:"webhooks"`
	// JoinLimit throttles failed joins of agents and servers.
	JoinLimit JoinLimitConfig `toml:"join_limit"`
	// MinFreeDisk is the least free space the data dir's disk must keep,
	// as a size ("512MiB", "1GiB") or a percent of the disk ("5%"); "0"
	// turns the check off. Below it the server refuses new uploads and
	// job submits (ResourceExhausted) and /readyz says so. Default 512MiB.
	MinFreeDisk DiskFloor `toml:"min_free_disk"`
	// MaxOutputDownloads is how many job output downloads one token may
	// have open at once on this server (default 4); more are answered
	// ResourceExhausted (429).
	MaxOutputDownloads int `toml:"max_output_downloads"`

	// RateLimit throttles API calls made with tokens, and failed
	// authentications; SIGHUP reloads it.
	RateLimit RateLimitConfig `toml:"rate_limit"`

	// Tracing sends OpenTelemetry traces to an OTLP/gRPC receiver; off
	// by default. SIGHUP reloads it.
	Tracing TracingConfig `toml:"tracing"`

	// FreeSpace, when set, replaces the statfs of the data dir in the
	// MinFreeDisk check (tests); it is not read from the file.
	FreeSpace func(dir string) (free, total uint64, err error) `toml:"-"`
}

// DiskFloor is a free-space floor: Bytes, or Percent of the disk's size.
type DiskFloor struct {
	Bytes   int64
	Percent float64
}

// UnmarshalText parses "512MiB", "1GiB", "2G", "1048576", "5%" or "0".
func (d *DiskFloor) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v >= 100 {
			return fmt.Errorf("%q is not a percent from 0 to 99; use a size like \"512MiB\" or a percent like \"5%%\"", text)
		}
		*d = DiskFloor{Percent: v}
		return nil
	}
	n, err := parseSize(s)
	if err != nil {
		return fmt.Errorf("%q is not a size; use a size like \"512MiB\" or \"1GiB\", or a percent like \"5%%\"", text)
	}
	*d = DiskFloor{Bytes: n}
	return nil
}

// MarshalText writes the floor as UnmarshalText reads it.
func (d DiskFloor) MarshalText() ([]byte, error) {
	if d.Percent > 0 {
		return []byte(strconv.FormatFloat(d.Percent, 'f', -1, 64) + "%"), nil
	}
	return []byte(strconv.FormatInt(d.Bytes, 10)), nil
}

// parseSize reads a byte count with an optional unit: B, K/KB/KiB, M/MB/MiB,
// G/GB/GiB, T/TB/TiB (all powers of 1024).
func parseSize(s string) (int64, error) {
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') && s[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), strings.ToLower(strings.TrimSpace(s[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}[unit]
	if mult == 0 || v*mult > 1<<62 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * mult), nil
}

// RateLimitConfig throttles the API calls (gRPC and REST) made with API
// tokens, with token buckets: each token has the bucket of its role (a
// rate per second and a burst), each source address (an IPv6 /64) one
// over all the tokens calling from it, and each source address one for
// failed authentications. A call over a limit is refused with
// ResourceExhausted (REST: 429) and the wait (RetryInfo; REST:
// Retry-After). A rate of 0 means no limit. Agents and servers, which
// authenticate with certificates, and joins (see JoinLimit) are never
// limited by these. cc-controlplane re-reads them from the config file
// on SIGHUP.
type RateLimitConfig struct {
	// AdminPerSecond and AdminBurst are the bucket of each admin token
	// (default 2000 per second, bursts of 4000).
	AdminPerSecond float64 `toml:"admin_per_second"`
	AdminBurst     int     `toml:"admin_burst"`
	// ViewerPerSecond and ViewerBurst are the bucket of each viewer token
	// (default 500 per second, bursts of 1000).
	ViewerPerSecond float64 `toml:"viewer_per_second"`
	ViewerBurst     int     `toml:"viewer_burst"`
	// JobsPerSecond and JobsBurst are the bucket of each jobs token
	// (default 1000 per second, bursts of 2000).
	JobsPerSecond float64 `toml:"jobs_per_second"`
	JobsBurst     int     `toml:"jobs_burst"`
	// AddressPerSecond and AddressBurst are the bucket of each source
	// address, over all its tokens (default 5000 per second, bursts of
	// 10000).
	AddressPerSecond float64 `toml:"address_per_second"`
	AddressBurst     int     `toml:"address_burst"`
	// FailedAuthPerMinute and FailedAuthBurst are the bucket of failed
	// authentications of each source address (default 600 per minute,
	// bursts of 1000: a secret of 256 bits is not guessed, the limit
	// bounds the work of a flood of bad credentials); an address with an
	// empty one is refused before its token is looked at.
	FailedAuthPerMinute float64 `toml:"failed_auth_per_minute"`
	FailedAuthBurst     int     `toml:"failed_auth_burst"`
}

// DefaultRateLimit is the rate_limit section when the file has none.
func DefaultRateLimit() RateLimitConfig {
	return RateLimitConfig{
		AdminPerSecond: 2000, AdminBurst: 4000,
		ViewerPerSecond: 500, ViewerBurst: 1000,
		JobsPerSecond: 1000, JobsBurst: 2000,
		AddressPerSecond: 5000, AddressBurst: 10000,
		FailedAuthPerMinute: 600, FailedAuthBurst: 1000,
	}
}

// TracingConfig turns on OpenTelemetry tracing (docs/tracing.md): spans
// of API calls, raft proposals and applies, and deliveries to agents, sent
// over OTLP/gRPC. cc-controlplane re-reads it from the config file on
// SIGHUP.
type TracingConfig struct {
	// Endpoint is the host:port of an OTLP/gRPC receiver (an OpenTelemetry
	// Collector, Jaeger, Tempo), like "127.0.0.1:4317"; empty (the
	// default) turns tracing off.
	Endpoint string `toml:"endpoint"`
	// SampleRatio is the share of new traces kept, from 0 to 1 (default
	// 0.1); a call that comes with a trace context follows its caller's
	// decision.
	SampleRatio float64 `toml:"sample_ratio"`
	// Insecure sends spans in plaintext, for a collector on this host or
	// a trusted network; otherwise over TLS checked against the system's
	// roots (default false).
	Insecure bool `toml:"insecure"`
}

// JoinLimitConfig throttles, per source address (an IPv6 /64), the join
// attempts of agents and servers that fail: a token bucket of Burst
// attempts refilled at PerMinute; a join that succeeds does not count. An
// address over the limit is answered ResourceExhausted, with the wait,
// before its token is even looked at.
type JoinLimitConfig struct {
	// PerMinute is the refill rate, in attempts per minute (default 10).
	PerMinute float64 `toml:"per_minute"`
	// Burst is how many attempts an address may make at once (default 20).
	Burst int `toml:"burst"`
}

// WebhooksConfig is the operator's say on where jobs' completion webhooks
// may go. They never go to unspecified, link-local or multicast addresses;
// loopback, private (RFC 1918), shared (100.64.0.0/10) and unique local
// (fc00::/7) addresses are refused unless a prefix of Allow holds them.
// Give every server the same list: a webhook is checked when it is
// submitted, by the server that takes the job, and when it is sent, by
// the leader.
type WebhooksConfig struct {
	// Allow lists CIDR prefixes such as "10.0.0.0/8" or "fd00::/8" (an
	// address alone is "10.1.2.3/32").
	Allow []string `toml:"allow"`
}

// AllowPrefixes parses Allow, which Validate has checked; entries that do
// not parse are left out.
func (w WebhooksConfig) AllowPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range w.Allow {
		if p, err := netip.ParsePrefix(strings.TrimSpace(a)); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// ACMEConfig tunes the leader's ACME work (the CA, account and challenges
// are cluster settings: ccctl cluster settings --acme-...).
type ACMEConfig struct {
	// RenewCheckInterval is how often the leader looks for certificates
	// due for renewal (default 10m).
	RenewCheckInterval Duration `toml:"renew_check_interval"`
	// ChallengeGrace is a wait, after the edge nodes connected to the
	// leader have a new challenge, for those connected to other servers,
	// before the CA is asked to validate it (default 300ms).
	ChallengeGrace Duration `toml:"challenge_grace"`
}

// BlobGCConfig says how often each server removes the blobs no record
// refers to (expired job outputs and logs, archives of removed images).
type BlobGCConfig struct {
	// Interval between two collections.
	Interval Duration `toml:"interval"`
	// Grace is how long a blob must have been unreferenced: an upload is
	// stored before the record that names it.
	Grace Duration `toml:"grace"`
}

// LogConfig says how the server logs.
type LogConfig struct {
	// Level is one of debug, info, warn, error.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
}

// RaftConfig holds the raft tuning knobs.
type RaftConfig struct {
	HeartbeatTimeout   Duration `toml:"heartbeat_timeout"`
	ElectionTimeout    Duration `toml:"election_timeout"`
	LeaderLeaseTimeout Duration `toml:"leader_lease_timeout"`
	CommitTimeout      Duration `toml:"commit_timeout"`
	SnapshotInterval   Duration `toml:"snapshot_interval"`
	SnapshotThreshold  uint64   `toml:"snapshot_threshold"`
	TrailingLogs       uint64   `toml:"trailing_logs"`
}

// Default values that are not obvious from Default itself.
const (
	defaultName = "cc-controlplane"
)

// Default returns the configuration used when nothing is set. DataDir is
// empty, so it does not validate until DataDir is set.
func Default() Config {
	name, err := os.Hostname()
	if err != nil || strings.TrimSpace(name) == "" {
		name = defaultName
	}
	return Config{
		Name:     name,
		APIAddr:  "0.0.0.0:7443",
		RaftAddr: "0.0.0.0:7444",
		// About three heartbeat periods of the agent.
		NodeDownAfter: Duration{10 * time.Second},
		BlobGC:        BlobGCConfig{Interval: Duration{10 * time.Minute}, Grace: Duration{time.Hour}},
		JoinLimit:     JoinLimitConfig{PerMinute: 10, Burst: 20},
		MinFreeDisk:   DiskFloor{Bytes: 512 << 20},
		// A few parallel range downloads of one client.
		MaxOutputDownloads: 4,
		RateLimit:          DefaultRateLimit(),
		Tracing:            TracingConfig{SampleRatio: 0.1},
		Log: LogConfig{
			Level:  "info",
			Format: "text",
		},
		// A follower calls an election after hearing nothing for 1-2 s
		// (the heartbeat timeout: long enough that a busy host does not
		// depose a live leader), and at once when the leader's raft port
		// refuses connections after three missed heartbeats (its process
		// died; raftstore's watchLeader). A leader that hears no majority
		// for a second steps down. Followers learn a commit within 10-20
		// ms when no new entry carries it sooner: a write through a
		// follower waits for that.
		Raft: RaftConfig{
			HeartbeatTimeout:   Duration{time.Second},
			ElectionTimeout:    Duration{time.Second},
			LeaderLeaseTimeout: Duration{time.Second},
			CommitTimeout:      Duration{10 * time.Millisecond},
			SnapshotInterval:   Duration{2 * time.Minute},
			SnapshotThreshold:  8192,
			TrailingLogs:       10240,
		},
	}
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	Line int    // 1-based line in the file, 0 when not known (e.g. the value came from a flag or default)
	Key  string // dotted TOML key, e.g. "raft.election_timeout"
	Msg  string // what is wrong and what to do
}

// String formats the problem as "line 3: key: msg", leaving out the line
// when it is not known and the key when there is none.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is a list of problems; as an error it prints on one line.
type Problems []Problem

// Error joins the problems with "; ".
func (p Problems) Error() string {
	if len(p) == 0 {
		return "no problems"
	}
	parts := make([]string, len(p))
	for i, q := range p {
		parts[i] = q.String()
	}
	return strings.Join(parts, "; ")
}

// FileError is what Load and Parse return: the file and what is wrong in it.
type FileError struct {
	Path     string
	Problems Problems
}

// Error formats the error as "<path>: line 3: key: msg; line 5: ..." on one
// line.
func (e *FileError) Error() string {
	if len(e.Problems) == 0 {
		return e.Path + ": invalid configuration"
	}
	return e.Path + ": " + e.Problems.Error()
}
