package metrics

import (
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// EnumLabel is an enum value's name as a label value: lower case, without
// the type's prefix ("ready" for NODE_STATE_READY with prefix
// "NODE_STATE_"); "unspecified" for the zero value.
func EnumLabel(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

// funcCollector is a collector over a function that sends the current
// values when /metrics is scraped.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// RaftStats is the raft node's state as the raft collector reads it.
type RaftStats struct {
	// State is raft's: Follower, Candidate, Leader or Shutdown.
	State         string
	Term          uint64
	HasLeader     bool
	LeaderChanges uint64
	FirstIndex    uint64
	LastIndex     uint64
	CommitIndex   uint64
	AppliedIndex  uint64
	// HasSnapshot: SnapshotIndex and SnapshotBytes describe the newest
	// snapshot on disk.
	HasSnapshot   bool
	SnapshotIndex uint64
	SnapshotBytes int64
	Voters        int
	// Peers is the last contact with each other member: on the leader, the
	// last answer of each follower; on a follower, the last message of
	// the leader.
	Peers []PeerContact
}

// PeerContact is how long ago this server last heard from a raft peer.
type PeerContact struct {
	ID, Name string
	Since    time.Duration
}

// raftStates are the values of cc_raft_state's label.
var raftStates = []string{"follower", "candidate", "leader", "shutdown"}

// CollectRaft adds the raft collector: read reads the node's state at
// each scrape.
func (m *Metrics) CollectRaft(read func() RaftStats) {
	if m == nil {
		return
	}
	var (
		state    = desc("raft_state", "The raft state of this server: 1 for the one it is in (follower, candidate, leader, shutdown).", "state")
		term     = desc("raft_term", "The current raft term.")
		leader   = desc("raft_has_leader", "1 when this server knows a raft leader, else 0.")
		changes  = desc("raft_leader_changes_total", "Changes of the raft leader this server saw since it started (an election won by anyone, or the leader lost).")
		last     = desc("raft_last_index", "Index of the last entry of this server's raft log.")
		commit   = desc("raft_commit_index", "The raft commit index this server knows.")
		applied  = desc("raft_applied_index", "Index of the last entry this server's state machine applied.")
		entries  = desc("raft_log_entries", "Entries in this server's raft log (older ones are compacted into snapshots).")
		snapIdx  = desc("raft_snapshot_index", "Last index the newest raft snapshot on disk covers.")
		snapSize = desc("raft_snapshot_size_bytes", "Size of the newest raft snapshot on disk.")
		voters   = desc("raft_voters", "Voters in the raft configuration.")
		contact  = desc("raft_last_contact_seconds", "Seconds since this server last heard from a raft peer: on the leader each follower's last answer, on a follower the leader's last message.", "peer", "peer_name")
	)
	m.reg.MustRegister(&funcCollector{
		descs: []*prometheus.Desc{state, term, leader, changes, last, commit, applied, entries, snapIdx, snapSize, voters, contact},
		collect: func(ch chan<- prometheus.Metric) {
			st := read()
			cur := strings.ToLower(st.State)
			for _, s := range raftStates {
				v := 0.0
				if s == cur {
					v = 1
				}
				gauge(ch, state, v, s)
			}
			gauge(ch, term, float64(st.Term))
			gauge(ch, leader, boolValue(st.HasLeader))
			ch <- prometheus.MustNewConstMetric(changes, prometheus.CounterValue, float64(st.LeaderChanges))
			gauge(ch, last, float64(st.LastIndex))
			gauge(ch, commit, float64(st.CommitIndex))
			gauge(ch, applied, float64(st.AppliedIndex))
			n := 0.0
			if st.LastIndex > 0 && st.FirstIndex > 0 && st.LastIndex >= st.FirstIndex {
				n = float64(st.LastIndex - st.FirstIndex + 1)
			}
			gauge(ch, entries, n)
			if st.HasSnapshot {
				gauge(ch, snapIdx, float64(st.SnapshotIndex))
				gauge(ch, snapSize, float64(st.SnapshotBytes))
			}
			gauge(ch, voters, float64(st.Voters))
			for _, p := range st.Peers {
				gauge(ch, contact, max(p.Since.Seconds(), 0), p.ID, p.Name)
			}
		},
	})
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// NodeKey is a node's state and availability, as label values.
type NodeKey struct{ State, Availability string }

// QueueCounts are a job queue's jobs waiting and placed or running.
type QueueCounts struct{ Queued, Active uint64 }

// CertInfo is a certificate record's name, expiry and renewal state.
type CertInfo struct {
	Name     string
	NotAfter time.Time
	// Renewal is the renewal state's label ("unspecified" for a manual
	// certificate).
	Renewal string
}

// StateCounts is the replicated state, counted: what the state collector
// exports.
type StateCounts struct {
	Nodes map[NodeKey]int
	// Containers counts every container record (tasks of services, plain
	// containers, job attempts) by the state its node reported.
	Containers map[string]int
	// PendingTasks counts the tasks without a node by the kind of reason
	// (every kind, 0 included).
	PendingTasks map[string]int
	// Services counts services by the state of their last update
	// ("none": never updated).
	Services map[string]int
	Jobs     map[string]int
	Queues   map[string]QueueCounts
	Certs    []CertInfo
	Images   int
}

// CollectState adds the state collector: read counts the replicated
// state at each scrape (it may cache between changes). now is its clock.
func (m *Metrics) CollectState(read func() (*StateCounts, error), now func() time.Time, log *slog.Logger) {
	if m == nil {
		return
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		nodes      = desc("nodes", "Nodes of the cluster by state (ready, down) and availability (active, pause, drain).", "state", "availability")
		containers = desc("cluster_containers", "Container records of the cluster (service tasks, containers, job attempts) by the state their node reported.", "state")
		pending    = desc("tasks_pending", "Tasks that should run but have no node, by the kind of reason: no_ready_node, constraints, resources, host_ports, invalid_placement or other.", "reason")
		services   = desc("services", "Services by the state of their last rolling update (none: never updated).", "update_state")
		jobs       = desc("jobs", "Jobs by state.", "state")
		queues     = desc("jobs_in_queue", "Jobs of each queue waiting (queued) and placed or running (active).", "queue", "state")
		expiry     = desc("certificate_expiry_seconds", "Seconds until a stored certificate expires (negative once expired).", "cert")
		certs      = desc("certificates", "Stored certificates by renewal state (unspecified: a manual certificate).", "renewal_state")
		images     = desc("images", "Images loaded into the cluster's image store.")
	)
	m.reg.MustRegister(&funcCollector{
		descs: []*prometheus.Desc{nodes, containers, pending, services, jobs, queues, expiry, certs, images},
		collect: func(ch chan<- prometheus.Metric) {
			st, err := read()
			if err != nil {
				log.Warn("metrics: cannot count the state", "err", err)
				for _, d := range []*prometheus.Desc{nodes, containers, pending, services, jobs, queues, expiry, certs, images} {
					ch <- prometheus.NewInvalidMetric(d, err)
				}
				return
			}
			// The states every dashboard and alert looks for are there
			// even at 0.
			nc := map[NodeKey]int{}
			for _, s := range []string{"ready", "down"} {
				for _, a := range []string{"active", "pause", "drain"} {
					nc[NodeKey{s, a}] = 0
				}
			}
			for k, v := range st.Nodes {
				nc[k] += v
			}
			for k, v := range nc {
				gauge(ch, nodes, float64(v), k.State, k.Availability)
			}
			for k, v := range withZeros(st.Containers, containerStates()) {
				gauge(ch, containers, float64(v), k)
			}
			for k, v := range st.PendingTasks {
				gauge(ch, pending, float64(v), k)
			}
			for k, v := range st.Services {
				gauge(ch, services, float64(v), k)
			}
			for k, v := range withZeros(st.Jobs, jobStates()) {
				gauge(ch, jobs, float64(v), k)
			}
			for q, c := range st.Queues {
				gauge(ch, queues, float64(c.Queued), q, "queued")
				gauge(ch, queues, float64(c.Active), q, "active")
			}
			t := now()
			byRenewal := map[string]int{}
			for _, c := range st.Certs {
				gauge(ch, expiry, c.NotAfter.Sub(t).Seconds(), c.Name)
				byRenewal[c.Renewal]++
			}
			for k, v := range byRenewal {
				gauge(ch, certs, float64(v), k)
			}
			gauge(ch, images, float64(st.Images))
		},
	})
}

func withZeros(m map[string]int, keys []string) map[string]int {
	out := make(map[string]int, len(m)+len(keys))
	for _, k := range keys {
		out[k] = 0
	}
	for k, v := range m {
		out[k] += v
	}
	return out
}

func jobStates() []string {
	var out []string
	for v, name := range ccv1.JobState_name {
		if v != 0 {
			out = append(out, EnumLabel(name, "JOB_STATE_"))
		}
	}
	sort.Strings(out)
	return out
}

func containerStates() []string {
	var out []string
	for v, name := range ccv1.ContainerState_name {
		if v != 0 {
			out = append(out, EnumLabel(name, "CONTAINER_STATE_"))
		}
	}
	sort.Strings(out)
	return out
}

// CollectSessions adds the gauge of the agents' sessions open on this
// server.
func (m *Metrics) CollectSessions(open func() int) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Name: "sessions_open", Help: "Agent sessions open on this server.",
	}, func() float64 { return float64(open()) }))
}

// CollectBlobs adds the collector of this server's blob store: read
// returns how many blobs it holds and their bytes. It is read at most
// once per every, since it lists the store.
func (m *Metrics) CollectBlobs(read func() (count int, bytes int64, err error), every time.Duration, log *slog.Logger) {
	if m == nil {
		return
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		count = desc("blobs", "Blobs stored on this server (image archives, site bundles, job inputs, outputs and logs).")
		size  = desc("blobs_bytes", "Bytes of the blobs stored on this server.")
	)
	var mu sync.Mutex
	var at time.Time
	var n int
	var b int64
	m.reg.MustRegister(&funcCollector{
		descs: []*prometheus.Desc{count, size},
		collect: func(ch chan<- prometheus.Metric) {
			mu.Lock()
			defer mu.Unlock()
			if at.IsZero() || time.Since(at) >= every {
				c, s, err := read()
				if err != nil {
					log.Warn("metrics: cannot list the blob store", "err", err)
					ch <- prometheus.NewInvalidMetric(count, err)
					return
				}
				n, b, at = c, s, time.Now()
			}
			gauge(ch, count, float64(n))
			gauge(ch, size, float64(b))
		},
	})
}

// CollectDisk adds the gauges of the data dir's file system: read returns
// its free and total bytes and the floor below which the server refuses
// uploads (min_free_disk; 0: none).
func (m *Metrics) CollectDisk(read func() (free, total, floor uint64, err error)) {
	if m == nil {
		return
	}
	var (
		free  = desc("disk_free_bytes", "Bytes free for this server on the file system of its data dir.")
		total = desc("disk_size_bytes", "Size of the file system of this server's data dir.")
		floor = desc("disk_min_free_bytes", "The free space below which this server refuses uploads and job submits (min_free_disk; 0: no floor).")
	)
	m.reg.MustRegister(&funcCollector{
		descs: []*prometheus.Desc{free, total, floor},
		collect: func(ch chan<- prometheus.Metric) {
			f, t, fl, err := read()
			if err != nil {
				ch <- prometheus.NewInvalidMetric(free, err)
				return
			}
			gauge(ch, free, float64(f))
			gauge(ch, total, float64(t))
			gauge(ch, floor, float64(fl))
		},
	})
}

// CollectBuild adds cc_build_info: 1, with the version.
func (m *Metrics) CollectBuild(version string) {
	if m == nil {
		return
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "build_info", Help: "Always 1; the version label is the control plane's build.",
		ConstLabels: prometheus.Labels{"version": version, "program": "cc-controlplane"}})
	g.Set(1)
	m.reg.MustRegister(g)
}
