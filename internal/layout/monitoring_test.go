package layout

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// monitoringDir holds the monitoring kit; metricsDoc lists the series.
const (
	monitoringDir = "docs/monitoring"
	metricsDoc    = "docs/metrics.md"
)

// seriesName is a cc_ series name in a rule, a query or the docs.
var seriesName = regexp.MustCompile(`\bcc_[a-z0-9_]+`)

// dashboard is what the test reads of the Grafana dashboard.
type dashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestMonitoringKit: the dashboard is JSON with a query in every panel but
// rows, and every cc_ series the alerts and the dashboard use is one
// docs/metrics.md lists (a histogram's _bucket, _sum and _count are its
// own). With promtool on the PATH, the dashboard's queries parse too (the
// alert rules are checked by `make check-monitoring`).
func TestMonitoringKit(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, metricsDoc))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, n := range seriesName.FindAllString(string(doc), -1) {
		documented[n] = true
	}

	raw, err := os.ReadFile(filepath.Join(root, monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s/grafana-dashboard.json: %v", monitoringDir, err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("the dashboard has only %d queries", len(exprs))
	}
	alerts, err := os.ReadFile(filepath.Join(root, monitoringDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}

	used := map[string]string{} // series → where
	for _, e := range exprs {
		for _, n := range seriesName.FindAllString(e, -1) {
			used[n] = "the dashboard"
		}
	}
	for _, n := range seriesName.FindAllString(string(alerts), -1) {
		used[n] = "alerts.yml"
	}
	var missing []string
	for n, where := range used {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && documented[b] {
				base = b
			}
		}
		if !documented[base] {
			missing = append(missing, n+" (in "+where+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("%s is not a series %s lists", m, metricsDoc)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Logf("promtool is not on the PATH: the dashboard's queries are not parsed")
		return
	}
	// The queries as recording rules, for promtool to parse: a JSON
	// string is a YAML double-quoted scalar.
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(e)
		b.WriteString("      - record: dashboard:query_" + strconv.Itoa(i) + "\n        expr: " + string(q) + "\n")
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's queries do not parse: %v\n%s", err, out)
	}
}
