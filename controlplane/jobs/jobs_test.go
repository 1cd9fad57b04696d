package jobs

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const gib = 1 << 30

func node(id string, memGiB int64) *ccv1.Node {
	return &ccv1.Node{Id: id, Name: id, State: ccv1.NodeState_NODE_STATE_READY, Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		Resources: &ccv1.Resources{CpuMillis: 64000, MemoryBytes: memGiB * gib}}
}

var seq uint64

func job(id, queue string, prio int32, memGiB int64) *statev1.JobRecord {
	seq++
	return &statev1.JobRecord{Job: &ccv1.Job{Id: id, Seq: seq, State: ccv1.JobState_JOB_STATE_QUEUED, Spec: &ccv1.JobSpec{
		Image: "img", Queue: queue, Priority: prio, Resources: &ccv1.ContainerResources{MemoryBytes: memGiB * gib, CpuMillis: 100}}}}
}

func newIDs() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("c%d", n) }
}

// starts returns "job@node" for each start op, in order.
func starts(p Plan) []string {
	var out []string
	for _, op := range p.Ops {
		if s := op.GetStart(); s != nil {
			out = append(out, s.JobId+"@"+s.NodeId)
		}
	}
	return out
}

func pendings(p Plan) map[string]string {
	out := map[string]string{}
	for _, op := range p.Ops {
		if s := op.GetPending(); s != nil {
			out[s.JobId] = s.Reason
		}
	}
	return out
}

func TestDispatchOrderAndCapacity(t *testing.T) {
	st := &fsm.DispatchState{Queues: map[string]*fsm.QueueInfo{}, Heads: map[string][]*statev1.JobRecord{
		"default": {job("hi", "default", 10, 1), job("a", "default", 0, 1), job("b", "default", 0, 1), job("c", "default", 0, 1)},
	}}
	p := Decide(Input{Jobs: st, Nodes: []*ccv1.Node{node("n1", 2)}, NewID: newIDs(), Now: time.Now()})
	got := starts(p)
	if fmt.Sprint(got) != "[hi@n1 a@n1]" {
		t.Fatalf("starts: %v", got)
	}
	pend := pendings(p)
	if !strings.Contains(pend["b"], "memory") || !strings.Contains(pend["c"], "memory") {
		t.Fatalf("pending reasons: %v", pend)
	}
	for _, op := range p.Ops {
		if s := op.GetStart(); s != nil && (s.Attempt != 1 || s.ContainerId == "") {
			t.Fatalf("start op: %v", s)
		}
	}
}

func TestDispatchQueueLimitAndFairness(t *testing.T) {
	st := &fsm.DispatchState{
		Queues: map[string]*fsm.QueueInfo{"a": {Name: "a", MaxRunning: 2, Running: 1}},
		Heads: map[string][]*statev1.JobRecord{
			"a": {job("a1", "a", 0, 1), job("a2", "a", 0, 1), job("a3", "a", 0, 1)},
			"b": {job("b1", "b", 0, 1), job("b2", "b", 0, 1), job("b3", "b", 0, 1)},
		},
	}
	p := Decide(Input{Jobs: st, Nodes: []*ccv1.Node{node("n1", 100)}, NewID: newIDs()})
	got := starts(p)
	// b has fewer running, so it goes first; a may start one more.
	if fmt.Sprint(got) != "[b1@n1 a1@n1 b2@n1 b3@n1]" {
		t.Fatalf("starts: %v", got)
	}
	if why := pendings(p)["a2"]; !strings.Contains(why, "queue a is at its limit of 2") {
		t.Fatalf("a2 pending: %q", why)
	}
}

func TestDispatchFailsAttemptsOfLostNodes(t *testing.T) {
	down := node("n2", 4)
	down.State = ccv1.NodeState_NODE_STATE_DOWN
	active := func(id, nodeID, cid string) *statev1.JobRecord {
		r := job(id, "default", 0, 1)
		r.Job.State = ccv1.JobState_JOB_STATE_RUNNING
		r.Job.Attempts = []*ccv1.JobAttempt{{Id: cid, Number: 1, NodeId: nodeID}}
		return r
	}
	now := time.Now()
	st := &fsm.DispatchState{Queues: map[string]*fsm.QueueInfo{}, Heads: map[string][]*statev1.JobRecord{},
		Active: []*statev1.JobRecord{active("ok", "n1", "c1"), active("onDown", "n2", "c2"), active("onGone", "n3", "c3"), active("stuck", "n1", "c4")}}
	runningSince := func(d time.Duration) *ccv1.ContainerStatus {
		return &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.New(now.Add(-d))}
	}
	containers := []*statev1.ContainerRecord{
		{Container: &ccv1.Container{Id: "c1", NodeId: "n1", JobId: "ok", Status: runningSince(time.Hour)}},
		{Container: &ccv1.Container{Id: "c2", NodeId: "n2", JobId: "onDown"}},
		// Past its default timeout of 1h, its 10s kill grace and the backstop.
		{Container: &ccv1.Container{Id: "c4", NodeId: "n1", JobId: "stuck", Status: runningSince(time.Hour + 2*time.Minute)}},
	}
	p := Decide(Input{Jobs: st, Nodes: []*ccv1.Node{node("n1", 4), down}, Containers: containers, NewID: newIDs(), Expired: []string{"old"}, Now: now})
	fails := map[string]string{}
	expired := 0
	for _, op := range p.Ops {
		if f := op.GetFailAttempt(); f != nil {
			fails[f.JobId] = f.Error
			if f.TimedOut != (f.JobId == "stuck") {
				t.Errorf("fail op of %s: timed_out %v", f.JobId, f.TimedOut)
			}
		}
		if op.GetExpire() == "old" {
			expired++
		}
	}
	if len(fails) != 3 || !strings.Contains(fails["onDown"], "is down") || !strings.Contains(fails["onGone"], "was removed") ||
		!strings.Contains(fails["stuck"], "did not stop it") || expired != 1 {
		t.Fatalf("fails %v expired %d", fails, expired)
	}
}

func TestWebhookSignedAndRetried(t *testing.T) {
	var calls atomic.Int32
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if !Verify("s3cret", body, r.Header.Get(HeaderSignature)) || r.Header.Get(HeaderJobID) != "j1" {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		got <- body
	}))
	defer srv.Close()
	rec := &statev1.JobRecord{WebhookSecret: "s3cret", Job: &ccv1.Job{Id: "j1", State: ccv1.JobState_JOB_STATE_SUCCEEDED,
		Spec: &ccv1.JobSpec{Image: "img", WebhookUrl: srv.URL, WebhookSecret: "s3cret"}}}
	w := &Webhooks{FirstBackoff: time.Millisecond, Attempts: 5}
	if st := w.Deliver(context.Background(), rec); st != fsm.WebhookDelivered {
		t.Fatalf("state %q", st)
	}
	body := <-got
	if !strings.Contains(string(body), `"JOB_STATE_SUCCEEDED"`) || strings.Contains(string(body), "s3cret") {
		t.Fatalf("body: %s", body)
	}
	if calls.Load() != 3 {
		t.Fatalf("calls: %d", calls.Load())
	}

	// A receiver that never accepts: failed after the attempts.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) }))
	defer bad.Close()
	rec.Job.Spec.WebhookUrl = bad.URL
	if st := w.Deliver(context.Background(), rec); !strings.HasPrefix(st, "failed: 5 attempts") {
		t.Fatalf("state %q", st)
	}
}

func TestWebhookAddressesRefused(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "10.1.2.3:443": true, "[::1]:80": true, "203.0.113.7:443": true,
		"169.254.169.254:80": false, "[fe80::1]:80": false, "0.0.0.0:80": false, "224.0.0.1:80": false, "[::ffff:169.254.169.254]:80": false,
	} {
		if err := CheckWebhookAddress(addr); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", addr, err, ok)
		}
	}
	// The default client refuses to connect, whatever the URL says.
	rec := &statev1.JobRecord{WebhookSecret: "s", Job: &ccv1.Job{Id: "j", Spec: &ccv1.JobSpec{WebhookUrl: "http://169.254.169.254/latest/meta-data/"}}}
	st := (&Webhooks{Attempts: 1}).Deliver(context.Background(), rec)
	if !strings.Contains(st, "link-local") {
		t.Fatalf("delivery to a link-local address: %q", st)
	}
}
