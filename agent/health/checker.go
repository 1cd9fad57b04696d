package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containercodes/cc/agent/health/healthstate"
)

// Containers is what the checks need of the container runtime
// (agent/runtime.Runtime implements it).
type Containers interface {
	// Exec runs argv in the running container id and returns its exit
	// code and combined output; it kills the process after timeout.
	Exec(ctx context.Context, id string, argv []string, timeout time.Duration) (exitCode int, output []byte, err error)
	// Dial opens a TCP connection to address ("ip:port") from inside the
	// container's network namespace.
	Dial(ctx context.Context, id, address string) (net.Conn, error)
}

// Checker runs one check of one container. It is the Monitor's only I/O.
type Checker interface {
	// Check runs c against container id once, within c.Timeout.
	Check(ctx context.Context, id string, c healthstate.Check) (ok bool, output string)
}

// NewChecker returns the Checker that execs and dials through cs.
func NewChecker(cs Containers) Checker {
	return containerChecker{cs: cs}
}

type containerChecker struct {
	cs Containers
}

// maxRedirects bounds the redirects an HTTP check follows (on the same
// host and port only).
const maxRedirects = 10

func (k containerChecker) Check(ctx context.Context, id string, c healthstate.Check) (bool, string) {
	if len(c.Exec) > 0 {
		return k.exec(ctx, id, c)
	}
	return k.http(ctx, id, c)
}

func (k containerChecker) exec(ctx context.Context, id string, c healthstate.Check) (bool, string) {
	code, out, err := k.cs.Exec(ctx, id, c.Exec, c.Timeout)
	if err != nil {
		return false, joinOutput(err.Error(), out)
	}
	if code != 0 {
		return false, joinOutput(fmt.Sprintf("exit code %d", code), out)
	}
	return true, ""
}

func joinOutput(what string, out []byte) string {
	if s := strings.TrimSpace(string(out)); s != "" {
		return healthstate.TrimOutput(what + ": " + s)
	}
	return healthstate.TrimOutput(what)
}

// http GETs http://127.0.0.1:<port><path> in the container's network
// namespace. Redirects are followed on the same host and port only; a
// redirect elsewhere is the answer (3xx passes).
func (k containerChecker) http(ctx context.Context, id string, c healthstate.Check) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.HTTPPort))
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != target {
				return nil, fmt.Errorf("health check dials only %s, not %s", target, addr)
			}
			return k.cs.Dial(ctx, id, addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "http" || req.URL.Host != target {
				return http.ErrUseLastResponse
			}
			if len(via) >= maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+c.HTTPPath, nil)
	if err != nil {
		return false, healthstate.TrimOutput(err.Error())
	}
	req.Header.Set("User-Agent", "cc-agent health check")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return false, healthstate.TrimOutput(fmt.Sprintf("GET %s: no answer within %s", req.URL, c.Timeout))
		}
		return false, healthstate.TrimOutput(err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, healthstate.MaxOutput))
	return false, joinOutput(fmt.Sprintf("GET %s: HTTP %s", resp.Request.URL, resp.Status), body)
}
