package api_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// A token create, a service create and a job submit each leave an audit
// event naming who made them; refused calls go to the local audit file.
func TestAuditTrail(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	srv := testcluster.Start(t, func(c *testcluster.Config) { c.AuditFile = auditFile })
	admin := srv.Client()
	adminID, _, err := auth.ParseToken(srv.Token)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := admin.Tokens.CreateToken(ctxT(t), &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_JOBS, Description: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Services.CreateService(ctxT(t), &ccv1.CreateServiceRequest{Name: "web", Spec: &ccv1.ServiceSpec{Replicas: 1, Task: &ccv1.ContainerSpec{Image: "busybox"}}}); err != nil {
		t.Fatal(err)
	}
	job, err := ccv1.NewJobServiceClient(srv.Conn(tok.Secret)).SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}

	audit := ccv1.NewAuditServiceClient(srv.Conn(""))
	list, err := audit.ListAudit(ctxT(t), &ccv1.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	find := func(evs []*ccv1.AuditEvent, method string) *ccv1.AuditEvent {
		for _, ev := range evs {
			if ev.Method == method {
				return ev
			}
		}
		t.Fatalf("no audit event of %s in %v", method, evs)
		return nil
	}
	for _, want := range []struct {
		method, token string
		role          ccv1.Role
		target        string
	}{
		{ccv1.TokenService_CreateToken_FullMethodName, adminID, ccv1.Role_ROLE_ADMIN, tok.Token.Id},
		{ccv1.ServiceService_CreateService_FullMethodName, adminID, ccv1.Role_ROLE_ADMIN, "web ("},
		{ccv1.JobService_SubmitJob_FullMethodName, tok.Token.Id, ccv1.Role_ROLE_JOBS, job.Job.Id},
	} {
		ev := find(list.Events, want.method)
		if ev.TokenId != want.token || ev.Role != want.role || !strings.HasPrefix(ev.Target, want.target) || ev.Outcome != "ok" ||
			ev.Source != "127.0.0.1" || ev.Server != srv.ID() || ev.Index == 0 || ev.Time == nil {
			t.Errorf("%s: audit event %v, want token %s role %v target %s from 127.0.0.1", want.method, ev, want.token, want.role, want.target)
		}
	}
	// Newest first; filters.
	if len(list.Events) < 3 || list.Events[0].Method != ccv1.JobService_SubmitJob_FullMethodName {
		t.Errorf("events not newest first: %v", list.Events)
	}
	mine, err := audit.ListAudit(ctxT(t), &ccv1.ListAuditRequest{Principal: tok.Token.Id})
	if err != nil || len(mine.Events) != 1 || mine.Events[0].Method != ccv1.JobService_SubmitJob_FullMethodName {
		t.Errorf("principal filter: %v, %v", mine, err)
	}
	byMethod, err := audit.ListAudit(ctxT(t), &ccv1.ListAuditRequest{Method: "CreateService"})
	if err != nil || len(byMethod.Events) != 1 {
		t.Errorf("method filter: %v, %v", byMethod, err)
	}

	// WatchAudit sends what is written after it starts.
	watch, err := audit.WatchAudit(ctxT(t), &ccv1.WatchAuditRequest{Method: "RevokeToken"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Tokens.RevokeToken(ctxT(t), &ccv1.RevokeTokenRequest{Id: "nosuchtoken"}); err == nil {
		t.Fatal("revoking an unknown token succeeded")
	}
	got, err := watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev := got.Event; ev.Method != ccv1.TokenService_RevokeToken_FullMethodName || ev.Outcome != "error" || !strings.Contains(ev.Error, "not found") || ev.TokenId != adminID {
		t.Errorf("watched event %v, want a refused RevokeToken", ev)
	}

	// The trail is admin only; a refused call is audited locally.
	_, err = ccv1.NewAuditServiceClient(srv.Conn(tok.Secret)).ListAudit(ctxT(t), &ccv1.ListAuditRequest{})
	wantCode(t, err, codes.PermissionDenied, "may not call /cc.v1.AuditService/ListAudit")
	_, err = ccv1.NewTokenServiceClient(srv.Conn("CCAPI-1-nosuchid-wrongsecret")).ListTokens(ctxT(t), &ccv1.ListTokensRequest{})
	wantCode(t, err, codes.Unauthenticated, "")
	ca, err := pki.ParseCertPEM(srv.CACert)
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := pki.NewJoinToken(pki.Digest(ca))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ccv1.NewAgentServiceClient(srv.Conn("-")).Join(ctxT(t), joinReq(t, unknown.String(), "n-bad"))
	wantCode(t, err, codes.Unauthenticated, "unknown token")
	if n := srv.Srv.Refused(); n != 3 {
		t.Errorf("Refused() = %d, want 3", n)
	}

	// GET /v1/audit answers the same, as JSON.
	req, _ := http.NewRequest("GET", srv.URL()+"/v1/audit?principal="+tok.Token.Id, nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rest ccv1.ListAuditResponse
	if resp.StatusCode != 200 || protojson.Unmarshal(body, &rest) != nil || len(rest.Events) != 1 || rest.Events[0].TokenId != tok.Token.Id {
		t.Errorf("GET /v1/audit: %d %s", resp.StatusCode, body)
	}

	// The audit file has the applied events and the refusals, one JSON
	// object a line.
	f, err := os.Open(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("audit file line %q: %v", sc.Text(), err)
		}
		method, _ := line["method"].(string)
		outcome, _ := line["outcome"].(string)
		seen[method+" "+outcome] = true
	}
	for _, want := range []string{
		ccv1.TokenService_CreateToken_FullMethodName + " ok",
		ccv1.JobService_SubmitJob_FullMethodName + " ok",
		ccv1.AuditService_ListAudit_FullMethodName + " permission_denied",
		ccv1.TokenService_ListTokens_FullMethodName + " unauthenticated",
		ccv1.AgentService_Join_FullMethodName + " unauthenticated",
	} {
		if !seen[want] {
			t.Errorf("audit file has no %q: %v", want, seen)
		}
	}
}

// A write through a follower is recorded once, by the state machine of
// every server alike, naming the follower that took the call; server joins
// are recorded with their join token.
func TestAuditThroughAFollower(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	f := c.Followers()[0]
	if _, err := f.Client().Tokens.CreateToken(ctxT(t), &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
		t.Fatal(err)
	}
	var first []*ccv1.AuditEvent
	for i, s := range c.Servers {
		list, err := ccv1.NewAuditServiceClient(s.Conn("")).ListAudit(ctxT(t), &ccv1.ListAuditRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = list.Events
		} else if len(list.Events) != len(first) {
			t.Fatalf("server %d lists %d events, server 1 %d", i+1, len(list.Events), len(first))
		}
		for j, ev := range list.Events {
			if i > 0 && !proto.Equal(ev, first[j]) {
				t.Errorf("server %d: event %v, server 1: %v", i+1, ev, first[j])
			}
		}
	}
	if len(first) == 0 || first[0].Method != ccv1.TokenService_CreateToken_FullMethodName || first[0].Server != f.ID() {
		t.Fatalf("newest event %v, want CreateToken taken by %s", first, f.ID())
	}
	joins := 0
	for _, ev := range first {
		if ev.Method == ccv1.PeerService_JoinServer_FullMethodName && ev.Role == ccv1.Role_ROLE_SERVER && ev.TokenId != "" && ev.Outcome == "ok" {
			joins++
		}
	}
	if joins != 2 {
		t.Errorf("%d server joins audited, want 2: %v", joins, first)
	}
}
