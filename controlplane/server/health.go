package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/jobspec"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/readiness"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// certWarnBefore is how long before its expiry a certificate this server
// presents makes the (optional) tls check fail: the cluster's server
// certificates renew at two thirds of their life, so one this close to
// its end did not renew.
const certWarnBefore = 7 * 24 * time.Hour

// Checks are the dependency checks of /readyz, `ccctl status` and the
// local `cc-controlplane status`: raft runs, a leader is known, the state
// has caught up with the log, and the data disk is above its floor are
// required; the certificates this server presents are reported.
func (s *Server) Checks() []readiness.Check {
	return []readiness.Check{
		{Name: "raft", Required: true, Run: s.checkRaft},
		{Name: "leader", Required: true, Run: s.checkLeader},
		{Name: "caught_up", Required: true, Run: s.checkCaughtUp},
		{Name: "disk", Required: true, Run: s.checkDisk},
		{Name: "tls", Run: s.checkTLS},
	}
}

// Health runs the checks now.
func (s *Server) Health(ctx context.Context) readiness.Report {
	return readiness.Run(ctx, s.Checks())
}

func (s *Server) checkRaft(context.Context) (string, error) {
	if !s.ready.Load() || s.raft == nil {
		return "", errors.New("the server is starting or stopping")
	}
	st, err := s.raft.Status()
	if err != nil {
		return "", err
	}
	if st.State == "Shutdown" {
		return "", errors.New("raft has shut down")
	}
	return fmt.Sprintf("%s, term %d, %d voters", st.State, st.Term, len(st.Servers)), nil
}

func (s *Server) checkLeader(context.Context) (string, error) {
	st, err := s.raft.Status()
	if err != nil {
		return "", err
	}
	if st.LeaderID == "" {
		return "", fmt.Errorf("no raft leader: fewer than a majority of the %d servers reach each other (see `ccctl server ls`; docs/operations.md, \"Lost quorum\")", len(st.Servers))
	}
	if st.LeaderID == st.ID {
		return "this server leads", nil
	}
	since := time.Since(s.raft.LastContact()).Round(time.Millisecond)
	return fmt.Sprintf("%s at %s, last contact %s ago", st.LeaderID, st.LeaderAddress, since), nil
}

func (s *Server) checkCaughtUp(context.Context) (string, error) {
	if err := s.caughtUp(); err != nil {
		return "", errors.New(status.Convert(err).Message())
	}
	st, err := s.raft.Status()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("applied %d, commit %d", s.fsm.AppliedIndex(), st.CommitIndex), nil
}

func (s *Server) checkDisk(context.Context) (string, error) {
	if err := s.disk.Check(); err != nil {
		return "", errors.New(status.Convert(err).Message())
	}
	free, total, floor, err := s.disk.Status()
	if err != nil {
		return "cannot read the free space: " + err.Error(), nil
	}
	return fmt.Sprintf("%s free of %s (floor %s)", jobspec.FormatBytes(int64(free)), jobspec.FormatBytes(int64(total)), jobspec.FormatBytes(int64(floor))), nil
}

func (s *Server) checkTLS(context.Context) (string, error) {
	now := s.now()
	cur := s.id.current().Leaf
	if left := cur.NotAfter.Sub(now); left < certWarnBefore {
		return "", fmt.Errorf("the server certificate expires %s (in %s) and has not renewed: see the log for \"server certificate\" (docs/operations.md, \"A certificate that does not renew\")",
			cur.NotAfter.Format(time.RFC3339), left.Round(time.Minute))
	}
	detail := fmt.Sprintf("server certificate valid until %s, renews after %s", cur.NotAfter.Format(time.RFC3339), pki.RenewAt(cur).Format(time.RFC3339))
	if s.certs != nil {
		if op := s.certs.op.Load(); op != nil {
			if left := op.Leaf.NotAfter.Sub(now); left < certWarnBefore {
				return "", fmt.Errorf("the API certificate of tls_cert_file expires %s (in %s): replace the files (they are reloaded when they change)",
					op.Leaf.NotAfter.Format(time.RFC3339), left.Round(time.Minute))
			}
			detail += fmt.Sprintf("; API certificate valid until %s", op.Leaf.NotAfter.Format(time.RFC3339))
		}
	}
	return detail, nil
}

// readyz answers /readyz: every check as JSON, 503 when a required one
// fails. Below the free-space floor the server refuses uploads and
// submits, so it is not ready for them, though it still serves reads and
// raft.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	readiness.Readyz(s.Checks).ServeHTTP(w, r)
}

// ReadinessChecks is the API's form of a report (ccctl status).
func ReadinessChecks(rep readiness.Report) []*ccv1.ReadinessCheck {
	out := make([]*ccv1.ReadinessCheck, len(rep.Checks))
	for i, c := range rep.Checks {
		out[i] = &ccv1.ReadinessCheck{Name: c.Name, Ok: c.OK, Required: c.Required, Message: c.Message}
	}
	return out
}
