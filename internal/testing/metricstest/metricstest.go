// Package metricstest checks a scrape of /metrics in tests: the series
// asked for are there, client_golang's linter finds no problem, and
// neither does `promtool check metrics` when promtool is on the PATH
// (Debian's prometheus package; scripts/prereqs.sh installs it).
package metricstest

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Check fails t unless body (the text format) has a series whose name
// starts with each of prefixes, and both linters pass it.
func Check(t testing.TB, body []byte, prefixes ...string) {
	t.Helper()
	names := Names(body)
	for _, p := range prefixes {
		found := false
		for n := range names {
			if strings.HasPrefix(n, p) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no series named %s* in the scrape", p)
		}
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Logf("promtool is not on the PATH (install Debian's prometheus package): its check is skipped")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
		return
	}
	t.Logf("promtool check metrics: no problem in %d series", len(names))
}

// Names returns the names of the series in body (the text format), with
// the values of each.
func Names(body []byte) map[string][]string {
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		out[name] = append(out[name], line)
	}
	return out
}

// Value returns the value of the first series line that starts with
// series (a name with its labels as written, e.g.
// `cc_raft_state{state="leader"}`), and whether there is one.
func Value(body []byte, series string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}
