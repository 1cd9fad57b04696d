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
// The error names the flag.
func parseCPUs(flag, s string) (int64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("--%s %q: use a number of cores like 0.5 or 2", flag, s)
	}
	if f > 1e6 {
		return 0, fmt.Errorf("--%s %q: too many cores", flag, s)
	}
	m := int64(math.Round(f * 1000))
	if f > 0 && m == 0 {
		return 0, fmt.Errorf("--%s %q: the least is 0.001", flag, s)
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

// parseServiceRestart reads a service's --restart-policy: docker service's
// any, on-failure or none, or run's always and no.
func parseServiceRestart(s string) (ccv1.RestartPolicy, error) {
	switch strings.ToLower(s) {
	case "any":
		return ccv1.RestartPolicy_RESTART_POLICY_ALWAYS, nil
	case "none":
		return ccv1.RestartPolicy_RESTART_POLICY_NO, nil
	}
	if p, err := parseRestart(s); err == nil && p != ccv1.RestartPolicy_RESTART_POLICY_UNSPECIFIED {
		return p, nil
	}
	return 0, fmt.Errorf("--restart-policy %q: use any (or always), on-failure, or none (or no)", s)
}

// parseCount reads a whole number from 0 to max for flag: --replicas 3.
func parseCount(flag, s string, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: must be a whole number ≥ 0 (e.g. 3)", flag, s)
	}
	if n > max {
		return 0, fmt.Errorf("--%s %q: the most is %d", flag, s, max)
	}
	return n, nil
}

// parseDuration reads a duration for flag ("10s", "1m30s"); positive
// refuses 0.
func parseDuration(flag, s string, positive bool) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < 0 || (positive && d == 0) {
		more := ""
		if positive {
			more = " more than 0"
		}
		return 0, fmt.Errorf("--%s %q: use a duration%s like 10s, 500ms or 1m30s", flag, s, more)
	}
	return d, nil
}

// parseServiceMode reads --mode.
func parseServiceMode(s string) (ccv1.ServiceMode, error) {
	switch strings.ToLower(s) {
	case "replicated":
		return ccv1.ServiceMode_SERVICE_MODE_REPLICATED, nil
	case "global":
		return ccv1.ServiceMode_SERVICE_MODE_GLOBAL, nil
	}
	return 0, fmt.Errorf("--mode %q: use replicated (--replicas tasks) or global (one task on every node)", s)
}

// parseFailureAction reads --update-failure-action.
func parseFailureAction(s string) (ccv1.UpdateFailureAction, error) {
	switch strings.ToLower(s) {
	case "pause":
		return ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE, nil
	case "rollback":
		return ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK, nil
	case "continue":
		return ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE, nil
	}
	return 0, fmt.Errorf("--update-failure-action %q: use rollback, pause or continue", s)
}

// parseConstraint checks a placement constraint: ATTRIBUTE==VALUE or
// ATTRIBUTE!=VALUE, as docker's --constraint. The server checks the
// attribute.
func parseConstraint(flag, s string) (string, error) {
	op := "=="
	if strings.Contains(s, "!=") {
		op = "!="
	}
	attr, value, ok := strings.Cut(s, op)
	if !ok || strings.TrimSpace(attr) == "" || strings.TrimSpace(value) == "" {
		return "", fmt.Errorf("--%s %q: use ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE (e.g. node.labels.zone==a, node.name!=db1)", flag, s)
	}
	return strings.TrimSpace(s), nil
}

// parseSpread reads a node attribute to spread over: "node.labels.zone".
func parseSpread(flag, s string) (string, error) {
	attr := strings.TrimSpace(s)
	if !strings.HasPrefix(attr, "node.") || len(attr) == len("node.") || strings.IndexFunc(attr, unicode.IsSpace) >= 0 {
		return "", fmt.Errorf("--%s %q: use a node attribute like node.labels.zone", flag, s)
	}
	return attr, nil
}

// parseScale reads an argument of `service scale`: NAME=REPLICAS, as
// docker's.
func parseScale(arg string) (name string, replicas uint64, err error) {
	name, n, ok := strings.Cut(arg, "=")
	if !ok || name == "" {
		return "", 0, fmt.Errorf("service scale: %q is not NAME=REPLICAS (e.g. web=3)", arg)
	}
	if replicas, err = strconv.ParseUint(n, 10, 64); err != nil {
		return "", 0, fmt.Errorf("service scale: %q: REPLICAS must be a whole number ≥ 0 (e.g. %s=3)", arg, name)
	}
	return name, replicas, nil
}

// parseLabels reads node labels to set, KEY=VALUE, and keys to remove. A
// key both set and removed is an error.
func parseLabels(set, rm []string) (map[string]string, []string, error) {
	checkKey := func(arg, key string) error {
		if key == "" || strings.IndexFunc(key, unicode.IsSpace) >= 0 {
			return fmt.Errorf("label %q: the key must be a word without spaces (e.g. zone=a)", arg)
		}
		return nil
	}
	add := map[string]string{}
	for _, a := range set {
		key, value, ok := strings.Cut(a, "=")
		if !ok {
			return nil, nil, fmt.Errorf("label %q is not KEY=VALUE (e.g. zone=a)", a)
		}
		if err := checkKey(a, key); err != nil {
			return nil, nil, err
		}
		add[key] = value
	}
	for _, k := range rm {
		if err := checkKey(k, k); err != nil {
			return nil, nil, err
		}
		if _, both := add[k]; both {
			return nil, nil, fmt.Errorf("label %q is both set and removed; give it once", k)
		}
	}
	return add, rm, nil
}

// parseAvailability reads a node's --availability.
func parseAvailability(s string) (ccv1.NodeAvailability, error) {
	switch strings.ToLower(s) {
	case "active":
		return ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil
	case "pause":
		return ccv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, nil
	case "drain":
		return ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN, nil
	}
	return 0, fmt.Errorf("--availability %q: use active, pause or drain", s)
}

// parseStrategy reads --scheduling-strategy.
func parseStrategy(s string) (ccv1.SchedulingStrategy, error) {
	switch strings.ToLower(s) {
	case "spread":
		return ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD, nil
	case "binpack":
		return ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK, nil
	}
	return 0, fmt.Errorf("--scheduling-strategy %q: use spread (fewest tasks first) or binpack (fullest node that fits first)", s)
}
