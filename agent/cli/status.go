package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/containercodes/cc/agent/identity"
	"github.com/containercodes/cc/agent/runtime"
	"github.com/containercodes/cc/agent/worker"
	"github.com/containercodes/cc/internal/readiness"
)

// DefaultStatusAddr is where the agent answers /healthz and /readyz
// (--status-addr).
const DefaultStatusAddr = "127.0.0.1:7446"

// Agent is a running agent's parts that its readiness checks look at.
type Agent struct {
	Runtime  *runtime.Runtime
	Worker   *worker.Worker
	Identity *identity.Identity
	// Edge is the node's edge; nil when it serves none.
	Edge *Edge
}

// HealthHandler answers GET /healthz (liveness) and GET /readyz (Checks,
// as JSON; 503 when a required one fails). cc-agent serves it on
// --status-addr and on its control socket.
func (a *Agent) HealthHandler() http.Handler {
	return readiness.Handler(a.Checks)
}

// Checks are the agent's readiness checks: containerd answers, the
// session with the control plane is up, the edge's listeners serve
// (required), and the node certificate is far from its expiry (reported).
func (a *Agent) Checks() []readiness.Check {
	checks := []readiness.Check{
		{Name: "containerd", Required: true, Run: a.checkContainerd},
		{Name: "session", Required: true, Run: a.checkSession},
	}
	if a.Edge != nil {
		checks = append(checks, readiness.Check{Name: "edge", Required: true, Run: a.Edge.Check})
	}
	return append(checks, readiness.Check{Name: "tls", Run: a.checkCert})
}

func (a *Agent) checkContainerd(ctx context.Context) (string, error) {
	v, err := a.Runtime.Client().Version(ctx)
	if err != nil {
		return "", fmt.Errorf("containerd does not answer: %v (is it running? systemctl status containerd)", err)
	}
	return "containerd " + v.Version, nil
}

func (a *Agent) checkSession(context.Context) (string, error) {
	up, since, lastErr := a.Worker.Session()
	switch {
	case up:
		return fmt.Sprintf("up for %s", time.Since(since).Round(time.Second)), nil
	case lastErr != nil:
		return "", fmt.Errorf("no session with the control plane for %s: %v (can this host reach the servers' API port? `cc-agent logs`)", time.Since(since).Round(time.Second), lastErr)
	default:
		return "", errors.New("no session with the control plane yet (connecting)")
	}
}

func (a *Agent) checkCert(context.Context) (string, error) {
	na := a.Identity.NotAfter()
	if left := time.Until(na); left < 7*24*time.Hour {
		return "", fmt.Errorf("the node certificate expires %s (in %s) and has not renewed: see the log for \"certificate renewal\" (docs/operations.md)", na.Format(time.RFC3339), left.Round(time.Minute))
	}
	return "node certificate valid until " + na.Format(time.RFC3339), nil
}

// serveStatus serves h on addr until stop; "" or "off" serves nothing.
func serveStatus(addr string, h http.Handler) (stop func(), bound string, err error) {
	if addr == "" || addr == "off" {
		return func() {}, "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--status-addr %s: %w (choose another, or off)", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-done
	}, ln.Addr().String(), nil
}
