package ctl

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// parseSize reads a size as docker does: a number of bytes with an optional
// binary unit b, k, m, g or t (any case, optionally followed by "b" or "ib"):
// "512k", "64m", "1.5g", "100". The error names the flag.
func parseSize(flag, s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("--%s %q: use a size like 64m or 1g", flag, s)
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m[2]]
	tooBig := fmt.Errorf("--%s %q: too big", flag, s)
	if !strings.Contains(m[1], ".") {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > math.MaxInt64>>shift {
			return 0, tooBig
		}
		return n << shift, nil
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: use a size like 64m or 1g", flag, s)
	}
	if f *= float64(int64(1) << shift); f >= math.MaxInt64 {
		return 0, tooBig
	}
	return int64(f), nil
}

// sizeRE matches a lower-cased size: number, then b or k/m/g/t with an
// optional b or ib.
var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?(?:([kmgt])(?:i?b)?|b)?$`)

// parseCPUs reads a number of cores ("0.5", "2") as thousandths of a core.
func parseCPUs(s string) (int64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("--cpus %q: use a number of cores like 0.5 or 2", s)
	}
	if f > 1e6 {
		return 0, fmt.Errorf("--cpus %q: too many cores", s)
	}
	m := int64(math.Round(f * 1000))
	if f > 0 && m == 0 {
		return 0, fmt.Errorf("--cpus %q: the least is 0.001", s)
	}
	return m, nil
}

// parsePort reads a published port: HOSTPORT:PORT with an optional /tcp or
// /udp, as docker's -p.
func parsePort(s string) (*ccv1.PortMapping, error) {
	spec, proto := s, "tcp"
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		spec, proto = s[:i], strings.ToLower(s[i+1:])
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("--publish %q: protocol %q: use tcp or udp", s, s[i+1:])
		}
	}
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 2:
	case 1:
		return nil, fmt.Errorf("--publish %q: give the host port too, as HOSTPORT:PORT (e.g. 8080:80)", s)
	default:
		return nil, fmt.Errorf("--publish %q: binding to a host address is not supported; use HOSTPORT:PORT (e.g. 8080:80)", s)
	}
	var ports [2]int32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			if lo, hi, ok := strings.Cut(p, "-"); ok && lo != "" && hi != "" {
				return nil, fmt.Errorf("--publish %q: port ranges are not supported; use HOSTPORT:PORT", s)
			}
			return nil, fmt.Errorf("--publish %q: %q is not a port (1-65535); use HOSTPORT:PORT[/udp] (e.g. 8080:80)", s, p)
		}
		ports[i] = int32(n)
	}
	return &ccv1.PortMapping{HostPort: ports[0], ContainerPort: ports[1], Protocol: proto}, nil
}

// parseEnv checks -e entries: KEY=VALUE is kept; a bare KEY takes its value
// from ccctl's environment (via lookup) and is dropped when unset, as docker
// does.
func parseEnv(entries []string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	for _, e := range entries {
		key, _, hasValue := strings.Cut(e, "=")
		if key == "" {
			return nil, fmt.Errorf("--env %q: use KEY=VALUE", e)
		}
		if strings.IndexFunc(key, unicode.IsSpace) >= 0 {
			return nil, fmt.Errorf("--env %q: the name %q contains white space", e, key)
		}
		if hasValue {
			out = append(out, e)
		} else if v, ok := lookup(key); ok {
			out = append(out, key+"="+v)
		}
	}
	return out, nil
}

// parseRestart reads --restart; empty leaves the server's default.
func parseRestart(s string) (ccv1.RestartPolicy, error) {
	switch strings.ToLower(s) {
	case "":
		return ccv1.RestartPolicy_RESTART_POLICY_UNSPECIFIED, nil
	case "no":
		return ccv1.RestartPolicy_RESTART_POLICY_NO, nil
	case "on-failure":
		return ccv1.RestartPolicy_RESTART_POLICY_ON_FAILURE, nil
	case "always":
		return ccv1.RestartPolicy_RESTART_POLICY_ALWAYS, nil
	}
	if strings.HasPrefix(strings.ToLower(s), "on-failure:") {
		return 0, fmt.Errorf("--restart %q: a retry limit is not supported; use on-failure", s)
	}
	return 0, fmt.Errorf("--restart %q: use no, on-failure or always", s)
}

// parseNetwork reads --network; empty leaves the server's default.
func parseNetwork(s string) (ccv1.NetworkMode, error) {
	switch strings.ToLower(s) {
	case "":
		return ccv1.NetworkMode_NETWORK_MODE_UNSPECIFIED, nil
	case "bridge":
		return ccv1.NetworkMode_NETWORK_MODE_BRIDGE, nil
	case "none":
		return ccv1.NetworkMode_NETWORK_MODE_NONE, nil
	}
	return 0, fmt.Errorf("--network %q: use bridge or none", s)
}

// parseStopTimeout reads stop's --timeout: seconds as docker's -t ("10"), or
// a duration ("10s", "1m").
func parseStopTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.ParseUint(s, 10, 31); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--timeout %q: use seconds (10) or a duration (10s, 1m)", s)
	}
	return d, nil
}

// parseTail reads logs' --tail: "all" or a number of lines.
func parseTail(s string) (int64, error) {
	if strings.EqualFold(s, "all") {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--tail %q: use a number of lines or all", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("--tail 0: the API cannot start with no lines yet; use --tail 1 or more, or all")
	}
	return n, nil
}
