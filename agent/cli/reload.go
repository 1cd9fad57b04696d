package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/internal/control"
	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/tracing"
)

// reloadKeys are the config file's keys that a reload applies at once;
// the others take effect at the next start. The first is the log level,
// the others the edge's listener settings; egressKey, a list, reloads too.
var reloadKeys = []string{"log_level", "edge_http_addr", "edge_https_addr", "edge_https_public_port", "edge_access_log"}

// egressKey is the job network's egress allow-list.
const egressKey = "job_egress_allow"

// tracingKeys are the tracing settings, applied together.
var tracingKeys = []string{"tracing_endpoint", "tracing_sample_ratio", "tracing_insecure"}

// tracingApplier puts tracing settings in force (tracing.Provider).
type tracingApplier interface {
	Settings() tracing.Settings
	Apply(ctx context.Context, s tracing.Settings) (bool, error)
}

// egressSetter changes the job network's egress allow-list
// (runtime.Runtime).
type egressSetter interface {
	SetJobEgressAllow(allow []string) error
}

// agentReloader re-reads the agent's config file (SIGHUP, `cc-agent config
// reload`): the log level and the edge's listener settings change at once,
// other changed keys are named as waiting for a restart, and a file with
// a problem is refused whole, with its lines.
type agentReloader struct {
	path    string
	cmdline map[string]bool        // flags set on the command line: they win over the file
	start   map[string]fileSetting // the file as the agent started with it
	level   *slog.LevelVar
	edge    *Edge        // nil: the node serves no edge
	egress  egressSetter // nil: not reloaded
	// tracer, when set, gets the tracing_* keys at each reload.
	tracer tracingApplier
	log    *slog.Logger

	mu        sync.Mutex
	cur       map[string]string // reloadKeys in force, as flag text
	curEgress []string          // egressKey in force
}

// newAgentReloader records the reloadable settings in force.
func newAgentReloader(c *ucli.Context, cmdline map[string]bool, start map[string]fileSetting, level *slog.LevelVar, e *Edge, egress egressSetter, log *slog.Logger) *agentReloader {
	r := &agentReloader{path: c.String("config"), cmdline: cmdline, start: start, level: level, edge: e, egress: egress, log: log, cur: map[string]string{},
		curEgress: c.StringSlice("job-egress-allow")}
	for _, k := range reloadKeys {
		r.cur[k] = flagValue(c, strings.ReplaceAll(k, "_", "-"))
	}
	return r
}

// flagValue is a flag's value as text.
func flagValue(c *ucli.Context, name string) string {
	if name == "edge-https-public-port" {
		return strconv.Itoa(c.Int(name))
	}
	return c.String(name)
}

// flagDefaults are the defaults of the flags, as text, from a fresh
// command.
func flagDefaults() map[string]string {
	out := map[string]string{}
	for _, f := range app(io.Discard, io.Discard).Flags {
		switch x := f.(type) {
		case *ucli.StringFlag:
			out[x.Name] = x.Value
		case *ucli.IntFlag:
			out[x.Name] = strconv.Itoa(x.Value)
		case *ucli.Float64Flag:
			out[x.Name] = strconv.FormatFloat(x.Value, 'g', -1, 64)
		case *ucli.BoolFlag:
			out[x.Name] = strconv.FormatBool(x.Value)
		}
	}
	return out
}

// checkFileValues parses every value of the file as its flag would, on a
// fresh flag set: the running flags are not touched.
func checkFileValues(path string, file map[string]fileSetting) error {
	fresh := app(io.Discard, io.Discard)
	set := flag.NewFlagSet("check", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range fresh.Flags {
		if err := f.Apply(set); err != nil {
			return err
		}
	}
	var problems []string
	for k, s := range file {
		for _, v := range s.vals {
			if err := set.Set(strings.ReplaceAll(k, "_", "-"), v); err != nil {
				problems = append(problems, fmt.Sprintf("line %d: %s: %q: %v", s.line, k, v, err))
				break
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return &configFileError{path: path, problems: problems}
	}
	return nil
}

func (r *agentReloader) reload() control.ReloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := control.ReloadResult{File: r.path}
	refuse := func(err error) control.ReloadResult {
		if fe, ok := err.(*configFileError); ok {
			res.Problems = fe.problems
		} else {
			res.Problems = []string{err.Error()}
		}
		r.log.Error("config file refused; the configuration in force is kept", "file", r.path, "problems", strings.Join(res.Problems, "; "))
		return res
	}
	if r.path == "" {
		res.Problems = []string{"no config file to reload: start cc-agent with --config FILE"}
		r.log.Warn("config not reloaded: no config file (start with --config FILE)")
		return res
	}
	file, err := readConfigFile(r.path, app(io.Discard, io.Discard).Flags)
	if err == nil {
		err = checkFileValues(r.path, file)
	}
	if err != nil {
		return refuse(err)
	}
	defaults := flagDefaults()
	next := map[string]string{}
	for _, k := range reloadKeys {
		name := strings.ReplaceAll(k, "_", "-")
		switch s, ok := file[k]; {
		case r.cmdline[name]:
			next[k] = r.cur[k]
		case ok:
			next[k] = s.vals[len(s.vals)-1]
		default:
			next[k] = defaults[name]
		}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(next["log_level"])); err != nil {
		return refuse(&configFileError{path: r.path, problems: []string{fmt.Sprintf("line %d: log_level: %q: use debug, info, warn or error", file["log_level"].line, next["log_level"])}})
	}
	port, _ := strconv.Atoi(next["edge_https_public_port"])
	edgeOpts := EdgeOptions{Enabled: true, HTTPAddr: next["edge_http_addr"], HTTPSAddr: next["edge_https_addr"], HTTPSPublicPort: port, AccessLog: next["edge_access_log"]}
	if err := edgeOpts.Validate(); err != nil {
		line := 0
		for _, k := range reloadKeys[1:] {
			if s, ok := file[k]; ok && strings.Contains(err.Error(), "--"+strings.ReplaceAll(k, "_", "-")+" ") {
				line = s.line
			}
		}
		return refuse(&configFileError{path: r.path, problems: []string{fmt.Sprintf("line %d: %v", line, err)}})
	}
	// The egress allow-list first: it is checked as it is applied, and a
	// refusal leaves everything as it was.
	nextEgress := r.curEgress
	switch s, ok := file[egressKey]; {
	case r.cmdline["job-egress-allow"]:
	case ok:
		nextEgress = splitList(s.vals)
	default:
		nextEgress = nil
	}
	if !slices.Equal(nextEgress, r.curEgress) {
		if r.egress == nil {
			res.Restart = append(res.Restart, fmt.Sprintf("%s: %s -> %s", egressKey, listText(r.curEgress), listText(nextEgress)))
		} else if err := r.egress.SetJobEgressAllow(nextEgress); err != nil {
			return refuse(&configFileError{path: r.path, problems: []string{fmt.Sprintf("line %d: %s: %v", file[egressKey].line, egressKey, err)}})
		} else {
			res.Applied = append(res.Applied, fmt.Sprintf("%s: %s -> %s", egressKey, listText(r.curEgress), listText(nextEgress)))
			r.curEgress = nextEgress
		}
	}
	if r.tracer != nil {
		if err := r.reloadTracing(file, defaults, &res); err != nil {
			return refuse(err)
		}
	}
	change := func(k string) string { return fmt.Sprintf("%s: %q -> %q", k, r.cur[k], next[k]) }
	if next["log_level"] != r.cur["log_level"] {
		logging.SetLevel(r.level, next["log_level"])
		res.Applied = append(res.Applied, change("log_level"))
		r.cur["log_level"] = next["log_level"]
	}
	var edgeChanges []string
	for _, k := range reloadKeys[1:] {
		if next[k] != r.cur[k] {
			edgeChanges = append(edgeChanges, change(k))
		}
	}
	switch {
	case len(edgeChanges) == 0:
	case r.edge == nil:
		res.Restart = append(res.Restart, edgeChanges...)
	default:
		if err := r.edge.Rebind(edgeOpts); err != nil {
			res.Problems = append(res.Problems, err.Error())
			break
		}
		res.Applied = append(res.Applied, edgeChanges...)
		for _, k := range reloadKeys[1:] {
			r.cur[k] = next[k]
		}
	}
	// Keys that wait for a restart: changed since the start, and not
	// overridden on the command line.
	keys := map[string]bool{}
	for k := range file {
		keys[k] = true
	}
	for k := range r.start {
		keys[k] = true
	}
	for k := range keys {
		if slices.Contains(reloadKeys, k) || k == egressKey || r.tracer != nil && slices.Contains(tracingKeys, k) || r.cmdline[strings.ReplaceAll(k, "_", "-")] {
			continue
		}
		if a, b := r.start[k].vals, file[k].vals; !slices.Equal(a, b) {
			if k == "token" {
				res.Restart = append(res.Restart, "token: (hidden)")
				continue
			}
			res.Restart = append(res.Restart, fmt.Sprintf("%s: %s -> %s", k, listText(a), listText(b)))
		}
	}
	slices.Sort(res.Restart)
	switch {
	case len(res.Problems) > 0:
		r.log.Error("config reloaded in part", "file", r.path, "applied", strings.Join(res.Applied, "; "), "problems", strings.Join(res.Problems, "; "))
	case len(res.Applied) == 0 && len(res.Restart) == 0:
		r.log.Info("config reloaded: no change", "file", r.path)
	case len(res.Applied) > 0:
		r.log.Info("config reloaded", "file", r.path, "applied", strings.Join(res.Applied, "; "))
	}
	if len(res.Restart) > 0 {
		r.log.Warn("config keys changed that take effect only after a restart", "file", r.path, "keys", strings.Join(res.Restart, "; "))
	}
	return res
}

// splitList splits comma-separated entries, as the flag does.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

func listText(vals []string) string {
	switch len(vals) {
	case 0:
		return "(unset)"
	case 1:
		return strconv.Quote(vals[0])
	}
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// reloadTracing applies the file's tracing_* keys (a key set on the
// command line keeps its value; a key not in the file is its flag's
// default) when they differ from the settings in force.
func (r *agentReloader) reloadTracing(file map[string]fileSetting, defaults map[string]string, res *control.ReloadResult) error {
	cur := r.tracer.Settings()
	val := func(k, inForce string) (string, int) {
		name := strings.ReplaceAll(k, "_", "-")
		switch s, ok := file[k]; {
		case r.cmdline[name]:
			return inForce, 0
		case ok:
			return s.vals[len(s.vals)-1], s.line
		default:
			return defaults[name], 0
		}
	}
	endpoint, _ := val("tracing_endpoint", cur.Endpoint)
	ratioText, ratioLine := val("tracing_sample_ratio", strconv.FormatFloat(cur.SampleRatio, 'g', -1, 64))
	insecureText, _ := val("tracing_insecure", strconv.FormatBool(cur.Insecure))
	next := cur
	next.Endpoint = endpoint
	var err error
	if next.SampleRatio, err = strconv.ParseFloat(ratioText, 64); err != nil {
		return &configFileError{path: r.path, problems: []string{fmt.Sprintf("line %d: tracing_sample_ratio: %q: a number from 0 to 1", ratioLine, ratioText)}}
	}
	next.Insecure, _ = strconv.ParseBool(insecureText) // checked with the file's values
	if next == cur {
		return nil
	}
	if _, err := r.tracer.Apply(context.Background(), next); err != nil {
		return &configFileError{path: r.path, problems: []string{"tracing: " + err.Error()}}
	}
	res.Applied = append(res.Applied, fmt.Sprintf("tracing: endpoint %q, sample ratio %g, insecure %v -> endpoint %q, sample ratio %g, insecure %v",
		cur.Endpoint, cur.SampleRatio, cur.Insecure, next.Endpoint, next.SampleRatio, next.Insecure))
	return nil
}
