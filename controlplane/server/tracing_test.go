package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/otlptest"
	"github.com/containercodes/cc/internal/testing/testcluster"
)

// A REST call with a traceparent, sent to a follower, continues the
// caller's trace through the gateway's hop to the gRPC handler, the
// forwarding to the leader and raft, and the state machine's apply on
// every server.
func TestRESTCallContinuesTheCallersTrace(t *testing.T) {
	recv := otlptest.Start(t)
	c := testcluster.StartCluster(t, 3, testcluster.WithTracing(recv.Addr()))
	leader := c.Leader()
	f := c.Followers()[0]
	const callerTrace, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL()+"/v1/tokens", strings.NewReader(`{"role":"ROLE_VIEWER","description":"traced"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := f.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/tokens: %d %s", resp.StatusCode, body)
	}

	has := func(spans []otlptest.Span, name, kind string) []otlptest.Span {
		var out []otlptest.Span
		for _, s := range spans {
			if s.TraceID == callerTrace && s.Name == name && (kind == "" || s.Kind == kind) {
				out = append(out, s)
			}
		}
		return out
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	spans, err := recv.Wait(wctx, func(spans []otlptest.Span) bool {
		return len(has(spans, "POST /v1", "server")) == 1 && len(has(spans, "cc.v1.TokenService/CreateToken", "server")) == 1 &&
			len(has(spans, "raft.apply", "")) == 1 && len(has(spans, "fsm.apply", "")) == 3 && len(has(spans, "raft.forward", "")) == 1
	})
	if err != nil {
		t.Fatalf("incomplete trace: %v\n%s", err, otlptest.Tree(recv.Trace(callerTrace)))
	}
	tree := otlptest.Tree(recv.Trace(callerTrace), "cc.command.type")
	t.Logf("the trace:\n%s", tree)
	rest := has(spans, "POST /v1", "server")[0]
	if rest.ParentID != callerSpan || rest.Resource["cc.server.name"] != f.Config.Name {
		t.Errorf("REST span %+v: want the caller's span as parent, on the follower %s", rest, f.Config.Name)
	}
	grpcSrv := has(spans, "cc.v1.TokenService/CreateToken", "server")[0]
	if !otlptest.Ancestor(spans, rest, grpcSrv) {
		t.Errorf("the gRPC handler's span is not below the REST span:\n%s", tree)
	}
	forward := has(spans, "raft.forward", "")[0]
	apply := has(spans, "raft.apply", "")[0]
	if !otlptest.Ancestor(spans, grpcSrv, forward) || !otlptest.Ancestor(spans, forward, apply) || apply.Resource["cc.server.name"] != leader.Config.Name {
		t.Errorf("want CreateToken > raft.forward > ... > raft.apply on the leader %s:\n%s", leader.Config.Name, tree)
	}
	for _, s := range has(spans, "fsm.apply", "") {
		if !otlptest.Ancestor(spans, grpcSrv, s) || s.Attrs["cc.command.type"] != "CREATE_TOKEN" {
			t.Errorf("fsm.apply %+v is not a CREATE_TOKEN below the handler:\n%s", s, tree)
		}
	}
}
