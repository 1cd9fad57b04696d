// Package healthstate is the pure decision of container health checks:
// Parse turns a spec's check into a Check with defaults, and Next steps a
// State with one Result (consecutive passes and failures → STARTING,
// HEALTHY or UNHEALTHY). It does no I/O and reads no clock, so it is
// table-tested without containers; agent/health runs the checks and feeds
// their results through it.
package healthstate

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Defaults of a HealthCheck's unset fields.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 3 * time.Second
	DefaultRetries  = 3
	DefaultHTTPPort = 80
	// MinInterval is the shortest interval accepted, so that a check never
	// spins.
	MinInterval = 100 * time.Millisecond
	// MaxOutput bounds the output kept of a failed check.
	MaxOutput = 1024
)

// ErrInvalid is wrapped by Parse's errors.
var ErrInvalid = errors.New("invalid health check")

// Check is a container's health check with the defaults applied.
type Check struct {
	// Exec is the command run in the container; empty for an HTTP check.
	Exec []string
	// HTTPPath and HTTPPort: GET http://127.0.0.1:HTTPPort HTTPPath in the
	// container's network namespace.
	HTTPPath    string
	HTTPPort    int
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     uint32
}

// Parse validates a spec's health check and applies the defaults; ports
// are the spec's published ports (the first one's container port is the
// default HTTP port).
func Parse(hc *ccv1.HealthCheck, ports []*ccv1.PortMapping) (Check, error) {
	if hc == nil {
		return Check{}, fmt.Errorf("%w: none given", ErrInvalid)
	}
	c := Check{
		Exec:     hc.GetExec(),
		HTTPPath: hc.GetHttpPath(),
		HTTPPort: int(hc.GetHttpPort()),
		Retries:  hc.GetRetries(),
	}
	switch {
	case len(c.Exec) > 0 && c.HTTPPath != "":
		return Check{}, fmt.Errorf("%w: set exec or http_path, not both", ErrInvalid)
	case len(c.Exec) == 0 && c.HTTPPath == "":
		return Check{}, fmt.Errorf("%w: set exec (a command) or http_path (such as /healthz)", ErrInvalid)
	case len(c.Exec) > 0:
		if c.Exec[0] == "" {
			return Check{}, fmt.Errorf("%w: exec's first element (the program) is empty", ErrInvalid)
		}
		if c.HTTPPort != 0 {
			return Check{}, fmt.Errorf("%w: http_port is set on an exec check", ErrInvalid)
		}
	default:
		if !strings.HasPrefix(c.HTTPPath, "/") {
			return Check{}, fmt.Errorf("%w: http_path %q must start with /", ErrInvalid, c.HTTPPath)
		}
		if u, err := url.ParseRequestURI(c.HTTPPath); err != nil || u.Host != "" {
			return Check{}, fmt.Errorf("%w: http_path %q is not a path", ErrInvalid, c.HTTPPath)
		}
		if c.HTTPPort == 0 {
			c.HTTPPort = DefaultHTTPPort
			if len(ports) > 0 && ports[0].GetContainerPort() > 0 {
				c.HTTPPort = int(ports[0].GetContainerPort())
			}
		}
		if c.HTTPPort < 1 || c.HTTPPort > 65535 {
			return Check{}, fmt.Errorf("%w: http_port %d is not a port (1-65535)", ErrInvalid, c.HTTPPort)
		}
	}
	var err error
	if c.Interval, err = duration("interval", hc.GetInterval().AsDuration(), hc.GetInterval() != nil, DefaultInterval); err != nil {
		return Check{}, err
	}
	if c.Interval < MinInterval {
		return Check{}, fmt.Errorf("%w: interval %s is shorter than %s", ErrInvalid, c.Interval, MinInterval)
	}
	if c.Timeout, err = duration("timeout", hc.GetTimeout().AsDuration(), hc.GetTimeout() != nil, DefaultTimeout); err != nil {
		return Check{}, err
	}
	if c.StartPeriod, err = duration("start_period", hc.GetStartPeriod().AsDuration(), hc.GetStartPeriod() != nil, 0); err != nil {
		return Check{}, err
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	return c, nil
}

// duration applies def to an unset or zero duration and refuses a negative
// one.
func duration(name string, d time.Duration, set bool, def time.Duration) (time.Duration, error) {
	if d < 0 {
		return 0, fmt.Errorf("%w: %s %s is negative", ErrInvalid, name, d)
	}
	if !set || d == 0 {
		return def, nil
	}
	return d, nil
}

// Result is the outcome of one check.
type Result struct {
	// At is when the check began.
	At time.Time
	OK bool
	// Output is what a failed check said (its output, HTTP status or
	// error).
	Output string
}

// State is where a container's health stands.
type State struct {
	Health ccv1.HealthState
	// Failures counts the failed checks in a row that count (after the
	// start period).
	Failures uint32
	// Output is the output of the check that made the container
	// UNHEALTHY, empty otherwise: it changes only with a transition to
	// UNHEALTHY, so a status carrying it is not sent again for every
	// failed check.
	Output string
}

// Initial is the state of a container that just started.
func Initial() State {
	return State{Health: ccv1.HealthState_HEALTH_STATE_STARTING}
}

// Next is the state after result, for a container started at startedAt:
// a pass makes it HEALTHY (even during the start period); a failure during
// the start period changes nothing; otherwise Retries failures in a row
// make it UNHEALTHY.
func Next(c Check, s State, startedAt time.Time, r Result) State {
	if r.OK {
		return State{Health: ccv1.HealthState_HEALTH_STATE_HEALTHY}
	}
	if r.At.Sub(startedAt) < c.StartPeriod {
		return s
	}
	s.Failures++
	if s.Failures >= c.Retries && s.Health != ccv1.HealthState_HEALTH_STATE_UNHEALTHY {
		s.Health = ccv1.HealthState_HEALTH_STATE_UNHEALTHY
		s.Output = TrimOutput(r.Output)
	}
	return s
}

// TrimOutput trims space around s and bounds it to MaxOutput bytes, cut
// at a UTF-8 boundary.
func TrimOutput(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= MaxOutput {
		return s
	}
	const more = " …"
	cut := MaxOutput - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}
