// Package metrics is the control plane's Prometheus metrics: the series a
// server exports (names and labels in docs/metrics.md), counted and timed
// where things happen, and collectors that read the current state, raft
// and the local stores when /metrics is scraped. Each server has its own
// registry. A nil *Metrics is valid and records nothing, so the packages
// it instruments work without one (tests).
package metrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	imetrics "github.com/containercodes/cc/internal/metrics"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

const ns = imetrics.Namespace

// Metrics holds a server's series. Its methods are safe for concurrent use
// and do nothing on a nil *Metrics.
type Metrics struct {
	reg *prometheus.Registry

	apiRequests  *prometheus.CounterVec
	apiDuration  *prometheus.HistogramVec
	httpRequests *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec

	raftApply  prometheus.Histogram
	raftCommit prometheus.Histogram
	fsmApply   *prometheus.HistogramVec

	delivery    *prometheus.HistogramVec
	statusBatch prometheus.Histogram

	orchestratorPass prometheus.Histogram
	placement        prometheus.Histogram
	dispatchPass     prometheus.Histogram

	jobQueueWait      *prometheus.HistogramVec
	jobRun            *prometheus.HistogramVec
	jobsFinished      *prometheus.CounterVec
	jobOutput         prometheus.Histogram
	webhookAttempts   *prometheus.CounterVec
	webhookDeliveries *prometheus.CounterVec

	blobReplications   *prometheus.CounterVec
	blobReplicationDur prometheus.Histogram
	blobFetches        *prometheus.CounterVec
	blobGCRuns         *prometheus.CounterVec
	blobGCRemoved      prometheus.Counter
}

// New registers a server's series in reg (from internal/metrics.NewRegistry:
// the Go runtime and process collectors are already there).
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{reg: reg}
	f := factory{reg}
	m.apiRequests = f.counterVec("api_requests_total", "API calls served by this server (gRPC, and REST through the gateway), by method and gRPC status code.", "method", "code")
	m.apiDuration = f.histogramVec("api_request_duration_seconds", "Time to serve a unary API call, by method.", imetrics.DurationBuckets, "method")
	m.httpRequests = f.counterVec("api_http_requests_total", "HTTP requests on the API port that are not gRPC, by handler (gateway: REST under /v1/) and HTTP status code.", "handler", "code")
	m.authFailures = f.counterVec("api_auth_failures_total", "API calls refused for their credentials: unauthenticated (bad, revoked or expired token or certificate) or permission_denied (the role may not call the method).", "outcome")
	m.rateLimited = f.counterVec("api_rate_limited_total", "API calls refused by the rate limiter, by the limit that was exceeded: token, address or failed_auth.", "limit")

	m.raftApply = f.histogram("raft_apply_duration_seconds", "Time from proposing a command to this server's raft (as leader) until it was committed and applied.", imetrics.DurationBuckets)
	m.raftCommit = f.histogram("raft_commit_duration_seconds", "Time from the leader appending an entry to its log until this server's state machine applied it (on followers, plus the clock difference to the leader).", imetrics.DurationBuckets)
	m.fsmApply = f.histogramVec("fsm_apply_duration_seconds", "Time the state machine took to apply one command, by command type.", imetrics.DurationBuckets, "command")

	m.delivery = f.histogramVec("session_assignment_delivery_duration_seconds", "Time from a change of a node's assignments being applied on this server to its sending on the node's session (kind changes), or from the session's hello to the full set (kind full).", imetrics.DurationBuckets, "kind")
	m.statusBatch = f.histogram("session_status_batch_size", "Task statuses per status batch received from agents.", imetrics.CountBuckets)

	m.orchestratorPass = f.histogram("orchestrator_pass_duration_seconds", "Time of one orchestrator pass on the leader: read the state, decide (scheduler included), write the task ops.", imetrics.DurationBuckets)
	m.placement = f.histogram("scheduler_placement_latency_seconds", "Time from a task's creation to its placement on a node (0 for tasks placed when created).", imetrics.LongDurationBuckets)
	m.dispatchPass = f.histogram("jobs_dispatch_pass_duration_seconds", "Time of one job dispatcher pass on the leader: read queues and nodes, decide, write the job ops.", imetrics.DurationBuckets)

	m.jobQueueWait = f.histogramVec("jobs_queue_wait_seconds", "Time a job waited in its queue before an attempt was placed on a node (from submit, or from the end of the attempt before), by queue.", imetrics.LongDurationBuckets, "queue")
	m.jobRun = f.histogramVec("jobs_run_duration_seconds", "Run time of finished jobs' last attempt (start to finish), by queue.", imetrics.LongDurationBuckets, "queue")
	m.jobsFinished = f.counterVec("jobs_finished_total", "Jobs that reached a final state, by queue and outcome (succeeded, failed, timed_out, cancelled).", "queue", "outcome")
	m.jobOutput = f.histogram("jobs_output_bytes", "Size of finished jobs' stored output archives.", imetrics.ByteBuckets)
	m.webhookAttempts = f.counterVec("webhook_attempts_total", "Completion webhook POSTs, by result: ok (2xx), error (an error or another status) or denied (an address the policy refuses).", "result")
	m.webhookDeliveries = f.counterVec("webhook_deliveries_total", "Completion webhooks whose outcome was decided, by result: delivered or failed (every attempt failed).", "result")

	m.blobReplications = f.counterVec("blobs_replications_total", "Copies of a stored blob to the other servers, by result: ok (a majority holds it) or failed.", "result")
	m.blobReplicationDur = f.histogram("blobs_replication_duration_seconds", "Time to copy a stored blob to the other servers.", imetrics.DurationBuckets)
	m.blobFetches = f.counterVec("blobs_peer_fetches_total", "Blobs this server lacked and fetched from the other servers, by result: ok or failed.", "result")
	m.blobGCRuns = f.counterVec("blobs_gc_runs_total", "Passes of this server's blob collector, by result: ok or error.", "result")
	m.blobGCRemoved = f.counter("blobs_gc_removed_total", "Blobs this server's collector removed (no record referred to them for the grace period).")
	return m
}

// Registry is the registry the series are in: serve it at /metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// factory makes and registers series under the cc_ prefix.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

func seconds(d time.Duration) float64 { return max(d.Seconds(), 0) }

func result(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

// AuthFailed counts a call refused for its credentials; outcome is
// auth.OutcomeUnauthenticated or auth.OutcomePermissionDenied.
func (m *Metrics) AuthFailed(outcome string) {
	if m != nil {
		m.authFailures.WithLabelValues(outcome).Inc()
	}
}

// RateLimited counts a call refused by the rate limiter; limit is token,
// address or failed_auth.
func (m *Metrics) RateLimited(limit string) {
	if m != nil {
		m.rateLimited.WithLabelValues(limit).Inc()
	}
}

// RaftApplied times a command proposed to this server's raft, from the
// proposal until it was applied.
func (m *Metrics) RaftApplied(d time.Duration) {
	if m != nil {
		m.raftApply.Observe(seconds(d))
	}
}

// RaftCommitted times an entry from its append on the leader until its
// application here.
func (m *Metrics) RaftCommitted(d time.Duration) {
	if m != nil {
		m.raftCommit.Observe(seconds(d))
	}
}

// CommandApplied times the state machine's application of one command.
func (m *Metrics) CommandApplied(t statev1.CommandType, d time.Duration) {
	if m != nil {
		m.fsmApply.WithLabelValues(CommandLabel(t)).Observe(seconds(d))
	}
}

// CommandLabel is a command type as a label value: "submit_job" for
// COMMAND_TYPE_SUBMIT_JOB, "unknown" for a type this server does not know.
func CommandLabel(t statev1.CommandType) string {
	name, ok := statev1.CommandType_name[int32(t)]
	if !ok {
		return "unknown"
	}
	return strings.ToLower(strings.TrimPrefix(name, "COMMAND_TYPE_"))
}

// Delivery kinds of AssignmentsDelivered.
const (
	DeliveryFull    = "full"
	DeliveryChanges = "changes"
)

// AssignmentsDelivered times the sending of a node's assignments on its
// session.
func (m *Metrics) AssignmentsDelivered(kind string, d time.Duration) {
	if m != nil {
		m.delivery.WithLabelValues(kind).Observe(seconds(d))
	}
}

// StatusBatch counts the statuses of one batch an agent sent.
func (m *Metrics) StatusBatch(n int) {
	if m != nil {
		m.statusBatch.Observe(float64(n))
	}
}

// OrchestratorPass times one orchestrator pass.
func (m *Metrics) OrchestratorPass(d time.Duration) {
	if m != nil {
		m.orchestratorPass.Observe(seconds(d))
	}
}

// TaskPlaced records how long a task waited for a node.
func (m *Metrics) TaskPlaced(wait time.Duration) {
	if m != nil {
		m.placement.Observe(seconds(wait))
	}
}

// DispatchPass times one job dispatcher pass.
func (m *Metrics) DispatchPass(d time.Duration) {
	if m != nil {
		m.dispatchPass.Observe(seconds(d))
	}
}

// JobEvent is a change of a job the state machine applied: an attempt
// placed after a wait in the queue, or the job finished.
type JobEvent struct {
	Queue string
	// Placed: an attempt was placed on a node after QueueWait.
	Placed    bool
	QueueWait time.Duration
	// Finished: the job reached Outcome (a final state's label); Ran
	// says whether its last attempt started, Run how long it ran.
	Finished bool
	Outcome  string
	Ran      bool
	Run      time.Duration
	// OutputBytes is the size of its stored output (HasOutput: one was
	// stored).
	HasOutput   bool
	OutputBytes int64
}

// JobsChanged records the job events of one applied batch. Every server
// applies the same log, so every server counts the same events: sum over
// one server, or take the max over all, never the sum.
func (m *Metrics) JobsChanged(events []JobEvent) {
	if m == nil {
		return
	}
	for _, e := range events {
		if e.Placed {
			m.jobQueueWait.WithLabelValues(e.Queue).Observe(seconds(e.QueueWait))
		}
		if e.Finished {
			m.jobsFinished.WithLabelValues(e.Queue, e.Outcome).Inc()
			if e.Ran {
				m.jobRun.WithLabelValues(e.Queue).Observe(seconds(e.Run))
			}
			if e.HasOutput {
				m.jobOutput.Observe(float64(e.OutputBytes))
			}
		}
	}
}

// Webhook results.
const (
	WebhookOK        = "ok"
	WebhookError     = "error"
	WebhookDenied    = "denied"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed"
)

// WebhookAttempt counts one POST of a completion webhook.
func (m *Metrics) WebhookAttempt(result string) {
	if m != nil {
		m.webhookAttempts.WithLabelValues(result).Inc()
	}
}

// WebhookDone counts a webhook whose outcome was decided: delivered or
// failed.
func (m *Metrics) WebhookDone(result string) {
	if m != nil {
		m.webhookDeliveries.WithLabelValues(result).Inc()
	}
}

// BlobReplicated records a copy of a blob to the other servers.
func (m *Metrics) BlobReplicated(ok bool, d time.Duration) {
	if m != nil {
		m.blobReplications.WithLabelValues(result(ok)).Inc()
		m.blobReplicationDur.Observe(seconds(d))
	}
}

// BlobFetched records a fetch of a missing blob from the other servers.
func (m *Metrics) BlobFetched(ok bool) {
	if m != nil {
		m.blobFetches.WithLabelValues(result(ok)).Inc()
	}
}

// BlobGC records a collector pass that removed removed blobs.
func (m *Metrics) BlobGC(removed int, err error) {
	if m == nil {
		return
	}
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.blobGCRuns.WithLabelValues(r).Inc()
	m.blobGCRemoved.Add(float64(removed))
}
