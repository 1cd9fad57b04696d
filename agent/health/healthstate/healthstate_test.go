package healthstate

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const (
	starting  = ccv1.HealthState_HEALTH_STATE_STARTING
	healthy   = ccv1.HealthState_HEALTH_STATE_HEALTHY
	unhealthy = ccv1.HealthState_HEALTH_STATE_UNHEALTHY
)

func TestParse(t *testing.T) {
	d := durationpb.New
	tests := []struct {
		name    string
		hc      *ccv1.HealthCheck
		ports   []*ccv1.PortMapping
		want    Check
		wantErr string
	}{
		{
			name: "exec defaults",
			hc:   &ccv1.HealthCheck{Exec: []string{"/bin/true"}},
			want: Check{Exec: []string{"/bin/true"}, Interval: 5 * time.Second, Timeout: 3 * time.Second, Retries: 3},
		},
		{
			name: "http default port 80",
			hc:   &ccv1.HealthCheck{HttpPath: "/healthz"},
			want: Check{HTTPPath: "/healthz", HTTPPort: 80, Interval: 5 * time.Second, Timeout: 3 * time.Second, Retries: 3},
		},
		{
			name:  "http default port from the first published port",
			hc:    &ccv1.HealthCheck{HttpPath: "/", Interval: d(time.Second), Timeout: d(0), StartPeriod: d(10 * time.Second), Retries: 1},
			ports: []*ccv1.PortMapping{{HostPort: 8081, ContainerPort: 8080}, {HostPort: 9091, ContainerPort: 9090}},
			want:  Check{HTTPPath: "/", HTTPPort: 8080, Interval: time.Second, Timeout: 3 * time.Second, StartPeriod: 10 * time.Second, Retries: 1},
		},
		{
			name:  "http explicit port and query",
			hc:    &ccv1.HealthCheck{HttpPath: "/ready?full=1", HttpPort: 9000},
			ports: []*ccv1.PortMapping{{ContainerPort: 8080}},
			want:  Check{HTTPPath: "/ready?full=1", HTTPPort: 9000, Interval: 5 * time.Second, Timeout: 3 * time.Second, Retries: 3},
		},
		{name: "nil", hc: nil, wantErr: "none given"},
		{name: "neither", hc: &ccv1.HealthCheck{}, wantErr: "set exec"},
		{name: "both", hc: &ccv1.HealthCheck{Exec: []string{"x"}, HttpPath: "/"}, wantErr: "not both"},
		{name: "empty program", hc: &ccv1.HealthCheck{Exec: []string{""}}, wantErr: "empty"},
		{name: "port on exec", hc: &ccv1.HealthCheck{Exec: []string{"x"}, HttpPort: 80}, wantErr: "http_port is set"},
		{name: "relative path", hc: &ccv1.HealthCheck{HttpPath: "healthz"}, wantErr: "must start with /"},
		{name: "control character", hc: &ccv1.HealthCheck{HttpPath: "/x\r\nHost: evil"}, wantErr: "not a path"},
		{name: "port too big", hc: &ccv1.HealthCheck{HttpPath: "/", HttpPort: 70000}, wantErr: "not a port"},
		{name: "negative port", hc: &ccv1.HealthCheck{HttpPath: "/", HttpPort: -1}, wantErr: "not a port"},
		{name: "negative timeout", hc: &ccv1.HealthCheck{Exec: []string{"x"}, Timeout: d(-time.Second)}, wantErr: "timeout -1s is negative"},
		{name: "tiny interval", hc: &ccv1.HealthCheck{Exec: []string{"x"}, Interval: d(time.Millisecond)}, wantErr: "shorter than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.hc, tt.ports)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse = %+v, %v; want an ErrInvalid containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalCheck(got, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func equalCheck(a, b Check) bool {
	return strings.Join(a.Exec, "\x00") == strings.Join(b.Exec, "\x00") && a.HTTPPath == b.HTTPPath &&
		a.HTTPPort == b.HTTPPort && a.Interval == b.Interval && a.Timeout == b.Timeout &&
		a.StartPeriod == b.StartPeriod && a.Retries == b.Retries
}

// TestNext steps the state machine through sequences of results.
func TestNext(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pass := func(sec int) Result { return Result{At: t0.Add(time.Duration(sec) * time.Second), OK: true} }
	fail := func(sec int, out string) Result {
		return Result{At: t0.Add(time.Duration(sec) * time.Second), Output: out}
	}
	type step struct {
		r    Result
		want State
	}
	tests := []struct {
		name  string
		check Check
		steps []step
	}{
		{
			name:  "a pass makes it healthy",
			check: Check{Retries: 3},
			steps: []step{{pass(1), State{Health: healthy}}},
		},
		{
			name:  "retries failures in a row make it unhealthy, with the output of the last",
			check: Check{Retries: 3},
			steps: []step{
				{fail(1, "a"), State{Health: starting, Failures: 1}},
				{fail(2, "b"), State{Health: starting, Failures: 2}},
				{fail(3, " c\n"), State{Health: unhealthy, Failures: 3, Output: "c"}},
				// Later failures do not change the reported output.
				{fail(4, "d"), State{Health: unhealthy, Failures: 4, Output: "c"}},
			},
		},
		{
			name:  "a pass resets the count",
			check: Check{Retries: 2},
			steps: []step{
				{fail(1, "a"), State{Health: starting, Failures: 1}},
				{pass(2), State{Health: healthy}},
				{fail(3, "b"), State{Health: healthy, Failures: 1}},
				{pass(4), State{Health: healthy}},
				{fail(5, "c"), State{Health: healthy, Failures: 1}},
				{fail(6, "d"), State{Health: unhealthy, Failures: 2, Output: "d"}},
			},
		},
		{
			name:  "unhealthy recovers on a pass",
			check: Check{Retries: 1},
			steps: []step{
				{fail(1, "down"), State{Health: unhealthy, Failures: 1, Output: "down"}},
				{pass(2), State{Health: healthy}},
			},
		},
		{
			name:  "failures in the start period do not count",
			check: Check{Retries: 1, StartPeriod: 10 * time.Second},
			steps: []step{
				{fail(1, "a"), State{Health: starting}},
				{fail(9, "b"), State{Health: starting}},
				{fail(10, "c"), State{Health: unhealthy, Failures: 1, Output: "c"}},
			},
		},
		{
			name:  "a pass in the start period makes it healthy",
			check: Check{Retries: 2, StartPeriod: 10 * time.Second},
			steps: []step{
				{fail(1, "a"), State{Health: starting}},
				{pass(2), State{Health: healthy}},
				{fail(3, "b"), State{Health: healthy}},
				{fail(11, "c"), State{Health: healthy, Failures: 1}},
				{fail(12, "d"), State{Health: unhealthy, Failures: 2, Output: "d"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Initial()
			for i, st := range tt.steps {
				s = Next(tt.check, s, t0, st.r)
				if s != st.want {
					t.Fatalf("step %d (%+v): %+v, want %+v", i, st.r, s, st.want)
				}
			}
		})
	}
}

func TestTrimOutput(t *testing.T) {
	if got := TrimOutput("  ok \n"); got != "ok" {
		t.Errorf("TrimOutput = %q", got)
	}
	long := strings.Repeat("é", MaxOutput) // 2 bytes each
	got := TrimOutput(long)
	if len(got) > MaxOutput || !utf8.ValidString(got) || !strings.HasSuffix(got, " …") {
		t.Errorf("TrimOutput of %d bytes: %d bytes, valid %v", len(long), len(got), utf8.ValidString(got))
	}
}
