package metrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

func TestRaftCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.CollectRaft(func() RaftStats {
		return RaftStats{State: "Leader", Term: 3, HasLeader: true, LeaderChanges: 2, FirstIndex: 10, LastIndex: 19, CommitIndex: 19, AppliedIndex: 18,
			Voters: 3, Peers: []PeerContact{{ID: "s2", Name: "cp-2", Since: 1500 * time.Millisecond}, {ID: "s3", Since: -time.Second}}}
	})
	want := `
# HELP cc_raft_state The raft state of this server: 1 for the one it is in (follower, candidate, leader, shutdown).
# TYPE cc_raft_state gauge
cc_raft_state{state="candidate"} 0
cc_raft_state{state="follower"} 0
cc_raft_state{state="leader"} 1
cc_raft_state{state="shutdown"} 0
# HELP cc_raft_log_entries Entries in this server's raft log (older ones are compacted into snapshots).
# TYPE cc_raft_log_entries gauge
cc_raft_log_entries 10
# HELP cc_raft_last_contact_seconds Seconds since this server last heard from a raft peer: on the leader each follower's last answer, on a follower the leader's last message.
# TYPE cc_raft_last_contact_seconds gauge
cc_raft_last_contact_seconds{peer="s2",peer_name="cp-2"} 1.5
cc_raft_last_contact_seconds{peer="s3",peer_name=""} 0
# HELP cc_raft_leader_changes_total Changes of the raft leader this server saw since it started (an election won by anyone, or the leader lost).
# TYPE cc_raft_leader_changes_total counter
cc_raft_leader_changes_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cc_raft_state", "cc_raft_log_entries", "cc_raft_last_contact_seconds", "cc_raft_leader_changes_total"); err != nil {
		t.Error(err)
	}
	// No snapshot on disk: no snapshot series, rather than a made-up 0.
	if n, err := testutil.GatherAndCount(reg, "cc_raft_snapshot_size_bytes"); err != nil || n != 0 {
		t.Errorf("snapshot series without a snapshot: %d %v", n, err)
	}
}

func TestStateCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var fail error
	m.CollectState(func() (*StateCounts, error) {
		if fail != nil {
			return nil, fail
		}
		return &StateCounts{
			Nodes:        map[NodeKey]int{{"ready", "active"}: 2, {"down", "drain"}: 1},
			PendingTasks: map[string]int{"resources": 3},
			Jobs:         map[string]int{"running": 4},
			Queues:       map[string]QueueCounts{"batch": {Queued: 5, Active: 1}},
			Certs:        []CertInfo{{Name: "web", NotAfter: now.Add(time.Hour), Renewal: "valid"}},
		}, nil
	}, func() time.Time { return now }, nil)
	want := `
# HELP cc_nodes Nodes of the cluster by state (ready, down) and availability (active, pause, drain).
# TYPE cc_nodes gauge
cc_nodes{availability="active",state="down"} 0
cc_nodes{availability="active",state="ready"} 2
cc_nodes{availability="drain",state="down"} 1
cc_nodes{availability="drain",state="ready"} 0
cc_nodes{availability="pause",state="down"} 0
cc_nodes{availability="pause",state="ready"} 0
# HELP cc_jobs_in_queue Jobs of each queue waiting (queued) and placed or running (active).
# TYPE cc_jobs_in_queue gauge
cc_jobs_in_queue{queue="batch",state="active"} 1
cc_jobs_in_queue{queue="batch",state="queued"} 5
# HELP cc_certificate_expiry_seconds Seconds until a stored certificate expires (negative once expired).
# TYPE cc_certificate_expiry_seconds gauge
cc_certificate_expiry_seconds{cert="web"} 3600
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cc_nodes", "cc_jobs_in_queue", "cc_certificate_expiry_seconds"); err != nil {
		t.Error(err)
	}
	// Every job state shows, at 0 too.
	if n, err := testutil.GatherAndCount(reg, "cc_jobs"); err != nil || n != 7 {
		t.Errorf("cc_jobs series: %d %v, want one per job state (7)", n, err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	// A state that cannot be read fails the scrape's series, not the
	// process.
	fail = errors.New("closed")
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("gather with a failing state: %v", err)
	}
}

func TestMethodLabel(t *testing.T) {
	for in, want := range map[string]string{
		"/cc.v1.JobService/SubmitJob":  "JobService/SubmitJob",
		"/grpc.health.v1.Health/Check": "Health/Check",
		"odd":                          "odd",
	} {
		if got := MethodLabel(in); got != want {
			t.Errorf("MethodLabel(%q) = %q, want %q", in, got, want)
		}
	}
	if got := CommandLabel(statev1.CommandType_COMMAND_TYPE_SUBMIT_JOB); got != "submit_job" {
		t.Errorf("CommandLabel = %q", got)
	}
	if got := CommandLabel(statev1.CommandType(9999)); got != "unknown" {
		t.Errorf("CommandLabel of an unknown type = %q", got)
	}
}

func TestHTTPHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	h := m.HTTPHandler("gateway", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ok"))
	}))
	for _, p := range []string{"/a", "/b", "/missing"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	want := `
# HELP cc_api_http_requests_total HTTP requests on the API port that are not gRPC, by handler (gateway: REST under /v1/) and HTTP status code.
# TYPE cc_api_http_requests_total counter
cc_api_http_requests_total{code="200",handler="gateway"} 2
cc_api_http_requests_total{code="404",handler="gateway"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cc_api_http_requests_total"); err != nil {
		t.Error(err)
	}
	// A nil *Metrics records nothing and hands the handler back.
	var none *Metrics
	if none.HTTPHandler("x", h) == nil {
		t.Error("nil Metrics lost the handler")
	}
	none.AuthFailed("unauthenticated")
	none.JobsChanged([]JobEvent{{Finished: true}})
}
