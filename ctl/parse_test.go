package ctl

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"100", 100, ""},
		{"100b", 100, ""},
		{"100B", 100, ""},
		{"512k", 512 << 10, ""},
		{"512K", 512 << 10, ""},
		{"64m", 64 << 20, ""},
		{"64M", 64 << 20, ""},
		{"64mb", 64 << 20, ""},
		{"64MiB", 64 << 20, ""},
		{"1g", 1 << 30, ""},
		{"1G", 1 << 30, ""},
		{"1.5g", 3 << 29, ""},
		{"0.5k", 512, ""},
		{"2t", 2 << 40, ""},
		{" 64m ", 64 << 20, ""},
		{"64 m", 64 << 20, ""},
		{"6x", 0, `--memory "6x": use a size like 64m or 1g`},
		{"", 0, "use a size"},
		{"m", 0, "use a size"},
		{"-1m", 0, "use a size"},
		{"+1m", 0, "use a size"},
		{"1.m", 0, "use a size"},
		{"1e3", 0, "use a size"},
		{"64mm", 0, "use a size"},
		{"64bb", 0, "use a size"},
		{"64i", 0, "use a size"},
		{"64ib", 0, "use a size"},
		{"1,5g", 0, "use a size"},
		{"9223372036854775807", 9223372036854775807, ""},
		{"9223372036854775808", 0, "too big"},
		{"8388608t", 0, "too big"},
		{"8388608.5t", 0, "too big"},
		{"8388607.5t", 8388607<<40 + 1<<39, ""},
	}
	for _, c := range cases {
		got, err := parseSize("memory", c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseSize(%q) = %d, %v; want error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseCPUs(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		err  string
	}{
		{"0.5", 500, ""},
		{"2", 2000, ""},
		{"1.25", 1250, ""},
		{".1", 100, ""},
		{"0.001", 1, ""},
		{"0.0015", 2, ""},
		{"0", 0, ""},
		{"0.0001", 0, "the least is 0.001"},
		{"-1", 0, "use a number of cores"},
		{"half", 0, `--cpus "half": use a number of cores like 0.5 or 2`},
		{"", 0, "use a number of cores"},
		{"NaN", 0, "use a number of cores"},
		{"Inf", 0, "use a number of cores"},
		{"1e9", 0, "too many"},
	}
	for _, c := range cases {
		got, err := parseCPUs("cpus", c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseCPUs(%q) = %d, %v; want error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseCPUs(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParsePort(t *testing.T) {
	cases := []struct {
		in   string
		want *ccv1.PortMapping
		err  string
	}{
		{"8080:80", &ccv1.PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, ""},
		{"8080:80/tcp", &ccv1.PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, ""},
		{"5353:53/udp", &ccv1.PortMapping{HostPort: 5353, ContainerPort: 53, Protocol: "udp"}, ""},
		{"5353:53/UDP", &ccv1.PortMapping{HostPort: 5353, ContainerPort: 53, Protocol: "udp"}, ""},
		{"65535:1", &ccv1.PortMapping{HostPort: 65535, ContainerPort: 1, Protocol: "tcp"}, ""},
		{"80", nil, "give the host port too"},
		{"80/udp", nil, "give the host port too"},
		{"127.0.0.1:8080:80", nil, "host address is not supported"},
		{"8080:80/sctp", nil, `protocol "sctp"`},
		{"0:80", nil, `"0" is not a port`},
		{"8080:65536", nil, `"65536" is not a port`},
		{"http:80", nil, `"http" is not a port`},
		{"8080:", nil, `"" is not a port`},
		{"8000-8010:8000-8010", nil, "ranges are not supported"},
		{"-1:80", nil, `"-1" is not a port`},
		{"8080:80-81", nil, "ranges are not supported"},
	}
	for _, c := range cases {
		got, err := parsePort(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "--publish ") {
				t.Errorf("parsePort(%q) = %v, %v; want error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !proto.Equal(got, c.want) {
			t.Errorf("parsePort(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestParseEnv(t *testing.T) {
	local := map[string]string{"HOME": "/home/me", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := local[k]; return v, ok }
	cases := []struct {
		in   []string
		want []string
		err  string
	}{
		{nil, nil, ""},
		{[]string{"A=1"}, []string{"A=1"}, ""},
		{[]string{"A=1,2", "B="}, []string{"A=1,2", "B="}, ""},
		{[]string{"A=x=y"}, []string{"A=x=y"}, ""},
		{[]string{"HOME"}, []string{"HOME=/home/me"}, ""},
		{[]string{"EMPTY"}, []string{"EMPTY="}, ""},
		{[]string{"UNSET", "A=1"}, []string{"A=1"}, ""},
		{[]string{"=1"}, nil, `--env "=1": use KEY=VALUE`},
		{[]string{""}, nil, "use KEY=VALUE"},
		{[]string{"A B=1"}, nil, "white space"},
	}
	for _, c := range cases {
		got, err := parseEnv(c.in, lookup)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseEnv(%q) = %q, %v; want error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseEnv(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestParseRestartAndNetwork(t *testing.T) {
	restarts := []struct {
		in   string
		want ccv1.RestartPolicy
		err  string
	}{
		{"", ccv1.RestartPolicy_RESTART_POLICY_UNSPECIFIED, ""},
		{"no", ccv1.RestartPolicy_RESTART_POLICY_NO, ""},
		{"on-failure", ccv1.RestartPolicy_RESTART_POLICY_ON_FAILURE, ""},
		{"ALWAYS", ccv1.RestartPolicy_RESTART_POLICY_ALWAYS, ""},
		{"always", ccv1.RestartPolicy_RESTART_POLICY_ALWAYS, ""},
		{"on-failure:3", 0, "retry limit is not supported"},
		{"unless-stopped", 0, `--restart "unless-stopped": use no, on-failure or always`},
		{"never", 0, "use no, on-failure or always"},
	}
	for _, c := range restarts {
		got, err := parseRestart(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseRestart(%q) = %v, %v; want error with %q", c.in, got, err, c.err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("parseRestart(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	networks := []struct {
		in   string
		want ccv1.NetworkMode
		err  string
	}{
		{"", ccv1.NetworkMode_NETWORK_MODE_UNSPECIFIED, ""},
		{"bridge", ccv1.NetworkMode_NETWORK_MODE_BRIDGE, ""},
		{"none", ccv1.NetworkMode_NETWORK_MODE_NONE, ""},
		{"None", ccv1.NetworkMode_NETWORK_MODE_NONE, ""},
		{"host", 0, `--network "host": use bridge or none`},
	}
	for _, c := range networks {
		got, err := parseNetwork(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseNetwork(%q) = %v, %v; want error with %q", c.in, got, err, c.err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("parseNetwork(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestParseStopTimeoutAndTail(t *testing.T) {
	stops := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"10", 10 * time.Second, true},
		{"0", 0, true},
		{"10s", 10 * time.Second, true},
		{"1m30s", 90 * time.Second, true},
		{"-5s", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
	}
	for _, c := range stops {
		got, err := parseStopTimeout(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseStopTimeout(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	tails := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"all", 0, true},
		{"ALL", 0, true},
		{"100", 100, true},
		{"1", 1, true},
		{"0", 0, false}, // the API reads 0 as all
		{"-3", 0, false},
		{"ten", 0, false},
	}
	for _, c := range tails {
		got, err := parseTail(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseTail(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestParseRole(t *testing.T) {
	for in, want := range map[string]ccv1.Role{"agent": ccv1.Role_ROLE_AGENT, "Admin": ccv1.Role_ROLE_ADMIN, "viewer": ccv1.Role_ROLE_VIEWER, "jobs": ccv1.Role_ROLE_JOBS, "metrics": ccv1.Role_ROLE_METRICS} {
		if got, err := parseRole(in); err != nil || got != want {
			t.Errorf("parseRole(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseRole("root"); err == nil {
		t.Error("parseRole(root): want an error")
	}
}
