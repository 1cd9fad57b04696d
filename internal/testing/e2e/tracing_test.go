package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/otlptest"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// traceOf is the spans of one trace, with helpers to find spans in it and
// check how they hang together.
type traceOf struct {
	t     *testing.T
	spans []otlptest.Span
}

// find returns the spans named name of service (cc-controlplane or
// cc-agent) whose attributes hold attrs (key, value pairs; the key "kind"
// is the span's kind).
func (tr traceOf) find(service, name string, attrs ...string) []otlptest.Span {
	var out []otlptest.Span
next:
	for _, s := range tr.spans {
		if s.Service != service || s.Name != name {
			continue
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			v := s.Attrs[attrs[i]]
			if attrs[i] == "kind" {
				v = s.Kind
			}
			if v != attrs[i+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// one is find with exactly one span expected.
func (tr traceOf) one(service, name string, attrs ...string) otlptest.Span {
	tr.t.Helper()
	got := tr.find(service, name, attrs...)
	if len(got) != 1 {
		tr.t.Fatalf("want one span %s of %s %v in the trace, got %d:\n%s", name, service, attrs, len(got), otlptest.Tree(tr.spans, treeKeys...))
	}
	return got[0]
}

// parent checks that p is s's parent.
func (tr traceOf) parent(p, s otlptest.Span) {
	tr.t.Helper()
	if s.ParentID != p.SpanID {
		tr.t.Errorf("%s (%s) is not a child of %s (%s):\n%s", s.Name, s.Service, p.Name, p.Service, otlptest.Tree(tr.spans, treeKeys...))
	}
}

// ancestor checks that a is above s in the tree.
func (tr traceOf) ancestor(a, s otlptest.Span) {
	tr.t.Helper()
	if !otlptest.Ancestor(tr.spans, a, s) {
		tr.t.Errorf("%s (%s) is not below %s (%s):\n%s", s.Name, s.Service, a.Name, a.Service, otlptest.Tree(tr.spans, treeKeys...))
	}
}

// treeKeys are the attributes a failing test's tree shows.
var treeKeys = []string{"cc.command.type", "cc.container.id", "cc.job.id", "cc.raft.leader_id", "cc.blob.kind"}

// waitTrace waits until the trace of the first span that root matches
// holds spans that want accepts, and returns it.
func waitTrace(t *testing.T, recv *otlptest.Receiver, root func(otlptest.Span) bool, want func(traceOf) bool) traceOf {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var tr traceOf
	_, err := recv.Wait(ctx, func(spans []otlptest.Span) bool {
		id := ""
		for _, s := range spans {
			if root(s) {
				id = s.TraceID
				break
			}
		}
		if id == "" {
			return false
		}
		tr = traceOf{t: t}
		for _, s := range spans {
			if s.TraceID == id {
				tr.spans = append(tr.spans, s)
			}
		}
		return want(tr)
	})
	if err != nil {
		t.Fatalf("the trace is not complete: %v\n%s", err, otlptest.Tree(tr.spans, treeKeys...))
	}
	return tr
}

// With tracing pointed at a receiver the test runs, one `ccctl run`
// against a follower is one trace: the API call, its forwarding to the
// leader and raft apply there, the state machine's apply on every server,
// the delivery to the agent and the agent's start on containerd. A job's
// trace goes from its submit through its dispatch to its run and the
// upload of its output.
func TestTracingSpansAPIRaftAndAgent(t *testing.T) {
	skipShort(t)
	recv := otlptest.Start(t)
	c := testcluster.StartCluster(t, 3, testcluster.WithTracing(recv.Addr()))
	leader := c.Leader()
	cl := leader.Client()
	loadDemoImage(t, cl)
	agent := leader.StartAgent("traced", testcluster.WithAgentTracing(recv.Addr()))
	// A first container makes sure the agent's session is open and has
	// its full set: the run below reaches it as a change.
	warm := create(t, cl, "warm-up", agent.ID.NodeID, busybox("/bin/busybox", "sleep", "300"))
	waitState(t, cl, warm.Id, "running", running)

	follower := c.Followers()[0]
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, follower.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	env := ctlEnv(t)
	r := ccctl(t, env, "--addr", follower.Addr(), "--token", follower.Token, "--ca-cert", caFile,
		"run", "-d", "--name", "traced-run", demoImage, "/bin/busybox", "sleep", "300")
	id := strings.TrimSpace(r.stdout)
	waitState(t, cl, id, "running", running)

	t.Run("run", func(t *testing.T) {
		tr := waitTrace(t, recv, func(s otlptest.Span) bool {
			return s.Name == "agent.start" && s.Attrs["cc.container.id"] == id
		}, func(tr traceOf) bool {
			return len(tr.find("cc-agent", "containerd.start")) > 0 && len(tr.find("cc-controlplane", "fsm.apply")) >= 3 &&
				len(tr.find("cc-controlplane", "raft.apply")) > 0 && len(tr.find("cc-controlplane", "session.deliver")) > 0 &&
				len(tr.find("cc-agent", "agent.start")) > 0 && len(tr.find("cc-agent", "containerd.create")) > 0 &&
				len(tr.find("cc-controlplane", "cc.v1.ContainerService/CreateContainer")) > 0 && len(tr.find("cc-controlplane", "raft.forward")) > 0
		})
		t.Logf("the trace of `ccctl run`:\n%s", otlptest.Tree(tr.spans, treeKeys...))

		api := tr.one("cc-controlplane", "cc.v1.ContainerService/CreateContainer", "kind", "server")
		if api.ParentID != "" || api.Kind != "server" || api.Resource["cc.server.name"] != follower.Config.Name {
			t.Errorf("the API span %+v: want the trace's root, a server span on the follower %s", api, follower.Config.Name)
		}
		propose := tr.one("cc-controlplane", "raft.propose", "cc.command.type", "CREATE_CONTAINER")
		tr.parent(api, propose)
		// The follower forwards the write to the leader, whose raft
		// applies it.
		forward := tr.one("cc-controlplane", "raft.forward")
		tr.parent(propose, forward)
		applyClient := tr.one("cc-controlplane", "cc.v1.PeerService/Apply", "kind", "client")
		tr.parent(forward, applyClient)
		applyServer := tr.one("cc-controlplane", "cc.v1.PeerService/Apply", "kind", "server")
		tr.parent(applyClient, applyServer)
		apply := tr.one("cc-controlplane", "raft.apply")
		tr.parent(applyServer, apply)
		if apply.Resource["cc.server.name"] != leader.Config.Name {
			t.Errorf("raft.apply ran on %s, want the leader %s", apply.Resource["cc.server.name"], leader.Config.Name)
		}
		// Every server's state machine applies it.
		servers := map[string]bool{}
		for _, s := range tr.find("cc-controlplane", "fsm.apply", "cc.command.type", "CREATE_CONTAINER") {
			tr.parent(propose, s)
			servers[s.Resource["cc.server.id"]] = true
		}
		if len(servers) != 3 {
			t.Errorf("fsm.apply on %d servers, want 3", len(servers))
		}
		// The session delivers it; the agent starts it on containerd.
		deliver := tr.one("cc-controlplane", "session.deliver", "cc.container.id", id)
		tr.parent(propose, deliver)
		start := tr.one("cc-agent", "agent.start", "cc.container.id", id)
		tr.parent(deliver, start)
		if start.Resource["cc.node.id"] != agent.ID.NodeID {
			t.Errorf("agent.start on node %s, want %s", start.Resource["cc.node.id"], agent.ID.NodeID)
		}
		tr.ancestor(start, tr.one("cc-agent", "containerd.create", "cc.container.id", id))
		tr.ancestor(start, tr.one("cc-agent", "containerd.start", "cc.container.id", id))
		// One trace: nothing of this container's start is elsewhere.
		for _, s := range recv.Spans() {
			if s.Attrs["cc.container.id"] == id && s.TraceID != api.TraceID {
				t.Errorf("span %s of the container is in another trace %s", s.Name, s.TraceID)
			}
		}
	})

	t.Run("job", func(t *testing.T) {
		j := submitJob(t, cl, &ccv1.JobSpec{Command: sh("echo traced > /output/a.txt")})
		waitJobEnd(t, cl, j.Id, ccv1.JobState_JOB_STATE_SUCCEEDED)
		tr := waitTrace(t, recv, func(s otlptest.Span) bool {
			return s.Name == "job.dispatch" && s.Attrs["cc.job.id"] == j.Id
		}, func(tr traceOf) bool {
			return len(tr.find("cc-agent", "job.upload")) >= 2 && len(tr.find("cc-controlplane", "job.dispatch")) > 0 &&
				len(tr.find("cc-agent", "agent.start")) > 0 && len(tr.find("cc-controlplane", "cc.v1.AgentService/UploadBlob")) >= 2 &&
				len(tr.find("cc-agent", "job.collect")) > 0 && len(tr.find("cc-controlplane", "cc.v1.JobService/SubmitJob")) > 0
		})
		t.Logf("the trace of a job:\n%s", otlptest.Tree(tr.spans, treeKeys...))
		submit := tr.one("cc-controlplane", "cc.v1.JobService/SubmitJob", "kind", "server")
		propose := tr.one("cc-controlplane", "raft.propose", "cc.command.type", "SUBMIT_JOB")
		tr.parent(submit, propose)
		dispatch := tr.one("cc-controlplane", "job.dispatch", "cc.job.id", j.Id)
		tr.parent(propose, dispatch)
		start := tr.one("cc-agent", "agent.start")
		tr.ancestor(dispatch, start)
		collect := tr.one("cc-agent", "job.collect", "cc.job.id", j.Id)
		tr.ancestor(dispatch, collect)
		for _, kind := range []string{"output", "logs"} {
			up := tr.one("cc-agent", "job.upload", "cc.blob.kind", kind)
			tr.parent(collect, up)
		}
		for _, s := range tr.find("cc-controlplane", "cc.v1.AgentService/UploadBlob", "kind", "server") {
			tr.ancestor(collect, s)
		}
	})
}
