package ctl

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestHumanSize(t *testing.T) {
	cases := map[int64]string{
		0:                 "0 B",
		512:               "512 B",
		1023:              "1023 B",
		1024:              "1.0 KiB",
		1536:              "1.5 KiB",
		45<<20 + 1<<18:    "45.2 MiB",
		120 << 20:         "120.0 MiB",
		3 << 30:           "3.0 GiB",
		5 << 40:           "5.0 TiB",
		5000 << 40:        "5000.0 TiB",
		-2048:             "-2.0 KiB",
		7*1<<30 + 600<<20: "7.6 GiB",
		1<<20 - 1<<10:     "1023.0 KiB",
		12<<20 + 300<<10:  "12.3 MiB",
	}
	for in, want := range cases {
		if got := humanSize(in); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "Less than a second ago"},
		{-time.Hour, "Less than a second ago"}, // clock skew
		{500 * time.Millisecond, "Less than a second ago"},
		{time.Second, "1 second ago"},
		{59 * time.Second, "59 seconds ago"},
		{time.Minute, "About a minute ago"},
		{2 * time.Minute, "2 minutes ago"},
		{59 * time.Minute, "59 minutes ago"},
		{time.Hour, "About an hour ago"},
		{90 * time.Minute, "2 hours ago"},
		{5 * time.Hour, "5 hours ago"},
		{47 * time.Hour, "47 hours ago"},
		{48 * time.Hour, "2 days ago"},
		{13 * 24 * time.Hour, "13 days ago"},
		{14 * 24 * time.Hour, "2 weeks ago"},
		{59 * 24 * time.Hour, "8 weeks ago"},
		{60 * 24 * time.Hour, "2 months ago"},
		{729 * 24 * time.Hour, "24 months ago"},
		{730 * 24 * time.Hour, "2 years ago"},
	}
	for _, c := range cases {
		if got := ago(timestamppb.New(now.Add(-c.d)), now); got != c.want {
			t.Errorf("ago(now-%v) = %q, want %q", c.d, got, c.want)
		}
	}
	if got := ago(nil, now); got != "-" {
		t.Errorf("ago(nil) = %q, want -", got)
	}
}

func TestContainerState(t *testing.T) {
	st := func(s ccv1.ContainerState) *ccv1.ContainerStatus { return &ccv1.ContainerStatus{State: s} }
	long := "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
	cases := []struct {
		c    *ccv1.Container
		want string
	}{
		{&ccv1.Container{}, "unknown"},
		{&ccv1.Container{Status: st(ccv1.ContainerState_CONTAINER_STATE_PENDING)}, "pending"},
		{&ccv1.Container{Status: st(ccv1.ContainerState_CONTAINER_STATE_ASSIGNED)}, "assigned"},
		{&ccv1.Container{Status: st(ccv1.ContainerState_CONTAINER_STATE_PREPARING)}, "preparing"},
		{&ccv1.Container{Status: st(ccv1.ContainerState_CONTAINER_STATE_RUNNING)}, "running"},
		{&ccv1.Container{Status: st(ccv1.ContainerState_CONTAINER_STATE_RUNNING), Desired: ccv1.DesiredState_DESIRED_STATE_STOPPED}, "stopping"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, Health: ccv1.HealthState_HEALTH_STATE_STARTING}}, "running (starting)"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, Health: ccv1.HealthState_HEALTH_STATE_HEALTHY}}, "running (healthy)"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, Health: ccv1.HealthState_HEALTH_STATE_UNHEALTHY}}, "running (unhealthy)"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED}}, "exited (0)"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED, ExitCode: 2}}, "exited (2)"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED, ExitCode: 137, OomKilled: true}}, "exited (137, oom-killed)"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_FAILED}}, "failed"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_FAILED, Error: "pull alpine:3.99:\n\tnot found"}}, "failed: pull alpine:3.99: not found"},
		{&ccv1.Container{Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_FAILED, Error: long}}, "failed: failed to create shim task: OCI runtime create fa…"},
	}
	for _, c := range cases {
		got := containerState(c.c)
		if got != c.want {
			t.Errorf("containerState(%v) = %q, want %q", c.c, got, c.want)
		}
		if strings.ContainsAny(got, "\t\n") {
			t.Errorf("containerState(%v) = %q: breaks the table", c.c, got)
		}
	}
}

func TestSmallFormats(t *testing.T) {
	checks := []struct{ got, want string }{
		{shortID("0123456789abcdef0123"), "0123456789ab"},
		{shortID("abc"), "abc"},
		{shortDigest("sha256:3f1c2b9a8d7e6f5a4b3c2d1e0f"), "3f1c2b9a8d7e"},
		{shortDigest("3f1c2b9a8d7e6f5a4b3c"), "3f1c2b9a8d7e"},
		{formatPorts(nil), ""},
		{formatPorts([]*ccv1.PortMapping{{HostPort: 8080, ContainerPort: 80}, {HostPort: 5353, ContainerPort: 53, Protocol: "udp"}}), "8080->80/tcp, 5353->53/udp"},
		{formatCPU(0), "-"},
		{formatCPU(500), "0.5"},
		{formatCPU(4000), "4"},
		{formatCPU(2250), "2.25"},
		{tokenUses(&ccv1.Token{Role: ccv1.Role_ROLE_AGENT, Uses: 1, MaxUses: 5}), "1/5"},
		{tokenUses(&ccv1.Token{Role: ccv1.Role_ROLE_AGENT, Uses: 3}), "3/-"},
		{tokenUses(&ccv1.Token{Role: ccv1.Role_ROLE_ADMIN}), "-"},
	}
	for i, c := range checks {
		if c.got != c.want {
			t.Errorf("check %d: got %q, want %q", i, c.got, c.want)
		}
	}
}

func TestFormatProgress(t *testing.T) {
	cases := []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{45<<20 + 1<<18, 120 << 20, 3681 * time.Millisecond,
			"Loading  45.2 MiB / 120.0 MiB [==========>                   ] 37%  12.3 MiB/s"},
		{0, 120 << 20, 0,
			"Loading  0 B / 120.0 MiB [                              ] 0%"},
		{120 << 20, 120 << 20, 10 * time.Second,
			"Loading  120.0 MiB / 120.0 MiB [==============================] 100%  12.0 MiB/s"},
		{4 << 20, 120 << 20, time.Second, // 1/30 of the bar
			"Loading  4.0 MiB / 120.0 MiB [>                             ] 3%  4.0 MiB/s"},
		// More than announced: capped, not a broken bar.
		{130 << 20, 120 << 20, 0,
			"Loading  130.0 MiB / 120.0 MiB [==============================] 100%"},
		// Unknown size (a pipe): no bar.
		{3 << 20, 0, 2 * time.Second, "Loading  3.0 MiB  1.5 MiB/s"},
	}
	for _, c := range cases {
		if got := formatProgress("Loading", c.done, c.total, c.elapsed); got != c.want {
			t.Errorf("formatProgress(%d, %d, %v)\n got %q\nwant %q", c.done, c.total, c.elapsed, got, c.want)
		}
	}
}

func TestProgressRedrawsAtMostTenTimesASecond(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	p := &progress{w: &buf, label: "Loading", total: 100 << 20, start: now, now: func() time.Time { return now }}
	for i := 0; i < 100; i++ { // 100 chunks of 1 MiB over one second
		now = now.Add(10 * time.Millisecond)
		p.Add(1 << 20)
	}
	p.Done()
	out := buf.String()
	if n := strings.Count(out, "\r"); n < 2 || n > 11 {
		t.Errorf("%d redraws in one second, want 2 to 11:\n%q", n, out)
	}
	if !strings.HasSuffix(out, "\rLoading  100.0 MiB / 100.0 MiB [==============================] 100%  100.0 MiB/s\n") {
		t.Errorf("final line wrong:\n%q", out)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("want exactly one newline, at the end:\n%q", out)
	}

	// Not a terminal: nothing at all.
	buf.Reset()
	q := newProgress(&buf, "Loading", 10)
	q.Add(10)
	q.Done()
	if buf.Len() != 0 {
		t.Errorf("progress on a non-terminal wrote %q", buf.String())
	}
}

func TestProgressPadsShorterLines(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	p := &progress{w: &buf, label: "Loading", start: now, now: func() time.Time { return now }}
	p.width = 40 // a longer line was drawn before
	p.draw("")
	line := strings.TrimPrefix(buf.String(), "\r")
	if len(line) != 40 || !strings.HasPrefix(line, "Loading  0 B") {
		t.Errorf("redraw %q: want it padded to 40 columns", line)
	}
}

func TestCodeWords(t *testing.T) {
	cases := map[codes.Code]string{
		codes.NotFound:           "not found",
		codes.InvalidArgument:    "invalid argument",
		codes.FailedPrecondition: "failed precondition",
		codes.Internal:           "internal",
		codes.ResourceExhausted:  "resource exhausted",
	}
	for c, want := range cases {
		if got := codeWords(c); got != want {
			t.Errorf("codeWords(%v) = %q, want %q", c, got, want)
		}
	}
}
