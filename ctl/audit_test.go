package ctl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// fakeAudit is the fake's audit trail.
type fakeAudit struct {
	events  []*ccv1.AuditEvent // ListAudit answers these (newest first)
	watched []*ccv1.AuditEvent // WatchAudit sends these, then ends
	listReq *ccv1.ListAuditRequest
	watch   *ccv1.WatchAuditRequest
}

func (f *fakeAPI) ListAudit(_ context.Context, r *ccv1.ListAuditRequest) (*ccv1.ListAuditResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit.listReq = r
	return &ccv1.ListAuditResponse{Events: f.audit.events}, nil
}

func (f *fakeAPI) WatchAudit(r *ccv1.WatchAuditRequest, s grpc.ServerStreamingServer[ccv1.WatchAuditResponse]) error {
	f.mu.Lock()
	f.audit.watch = r
	evs := f.audit.watched
	f.mu.Unlock()
	for _, ev := range evs {
		if err := s.Send(&ccv1.WatchAuditResponse{Event: ev}); err != nil {
			return err
		}
	}
	return nil
}

func auditEvents(at time.Time) []*ccv1.AuditEvent {
	return []*ccv1.AuditEvent{
		{Index: 9, Time: timestamppb.New(at.Add(2 * time.Second)), TokenId: "j0b5t0ken", Role: ccv1.Role_ROLE_JOBS, Method: ccv1.JobService_SubmitJob_FullMethodName,
			Target: "4b1d0e5a5e2f1c3d", Source: "10.0.0.7", Outcome: "ok"},
		{Index: 8, Time: timestamppb.New(at.Add(time.Second)), TokenId: "adm1n", Role: ccv1.Role_ROLE_ADMIN, Method: ccv1.ServiceService_CreateService_FullMethodName,
			Target: "web (5e41ce0123456789)", Source: "10.0.0.5", Outcome: "ok"},
		{Index: 7, Time: timestamppb.New(at), TokenId: "adm1n", Role: ccv1.Role_ROLE_ADMIN, Method: ccv1.TokenService_CreateToken_FullMethodName,
			Target: "j0b5t0ken", Source: "10.0.0.5", Outcome: "error", Error: "token j0b5t0ken already exists"},
	}
}

func TestAuditLsTable(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	f := &fakeAPI{audit: fakeAudit{events: auditEvents(at)}}
	conn := startFake(t, f)
	r := runCtl(conn, "audit", "ls", "--since", "1h", "--principal", "adm1n", "--method", "CreateToken")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 4 {
		t.Fatalf("audit ls: %+v", r)
	}
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "TIME PRINCIPAL METHOD TARGET OUTCOME SOURCE" {
		t.Errorf("header %q", lines[0])
	}
	// Oldest first, each with who did it.
	for i, want := range [][]string{
		{at.Local().Format(time.RFC3339), "adm1n (admin)", "TokenService/CreateToken", "j0b5t0ken", "error: token j0b5t0ken already exists", "10.0.0.5"},
		{"adm1n (admin)", "ServiceService/CreateService", "web (5e41ce0123456789)", " ok ", "10.0.0.5"},
		{"j0b5t0ken (jobs)", "JobService/SubmitJob", "4b1d0e5a5e2f1c3d", " ok ", "10.0.0.7"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
	}
	req := f.audit.listReq
	if req.Principal != "adm1n" || req.Method != "CreateToken" || req.Limit != 100 ||
		time.Since(req.Since.AsTime()) < time.Hour-time.Minute || time.Since(req.Since.AsTime()) > time.Hour+time.Minute {
		t.Errorf("request %v", req)
	}
	if r := runCtl(conn, "audit", "ls", "--since", "yesterday"); r.code == 0 || !strings.Contains(r.stderr, "--since") {
		t.Errorf("--since yesterday: %+v", r)
	}
}

// -f prints what is listed, then what the watch sends, from after the
// newest listed event; -o json prints JSON lines.
func TestAuditLsFollow(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	evs := auditEvents(at)
	f := &fakeAPI{audit: fakeAudit{events: evs[1:], watched: evs[:1]}}
	conn := startFake(t, f)
	r := runCtl(conn, "audit", "ls", "-f", "--method", "SubmitJob")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 4 || !strings.Contains(lines[3], "JobService/SubmitJob") {
		t.Fatalf("audit ls -f: %+v", r)
	}
	if w := f.audit.watch; w.AfterIndex != 8 || w.Method != "SubmitJob" {
		t.Errorf("watch request %v", w)
	}
	r = runCtl(conn, "-o", "json", "audit", "ls", "-f")
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("audit ls -f -o json: %+v", r)
	}
	var ev struct {
		TokenID string `json:"token_id"`
		Method  string `json:"method"`
	}
	if err := json.Unmarshal([]byte(lines[2]), &ev); err != nil || ev.TokenID != "j0b5t0ken" {
		t.Errorf("last line %q: %+v, %v", lines[2], ev, err)
	}
}

func TestClusterSettingsAuditRetention(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "cluster", "settings", "--audit-max-age", "720h", "--audit-max-events", "5000")
	if r.code != 0 || len(f.settingsReqs) != 1 {
		t.Fatalf("cluster settings: %+v", r)
	}
	a := f.settingsReqs[0].GetSettings().GetAudit()
	if a.GetMaxAge().AsDuration() != 720*time.Hour || a.GetMaxEvents() != 5000 {
		t.Errorf("sent %v", a)
	}
	if r := runCtl(conn, "cluster", "settings", "--audit-max-events", "-1"); r.code == 0 || !strings.Contains(r.stderr, "--audit-max-events") {
		t.Errorf("--audit-max-events -1: %+v", r)
	}
}
