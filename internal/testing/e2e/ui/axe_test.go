package uie2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// axeSource is axe-core's script from the frontend's npm packages (a
// dev dependency; $CC_AXE_JS names another copy), "" when they are not
// installed.
func axeSource(t *testing.T) string {
	t.Helper()
	root, err := testcluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "frontend", "node_modules", "axe-core", "axe.min.js")
	if p := os.Getenv("CC_AXE_JS"); p != "" {
		path = p
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("axe-core is not installed (%v): run make ui (npm ci in frontend/); the accessibility scan is skipped", err)
		return ""
	}
	return string(b)
}

// axeViolation is one rule axe found broken on a page.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Nodes   int      `json:"nodes"`
	Targets []string `json:"targets"`
}

// runAxe injects axe-core into the page (once per document; through the
// DevTools protocol, which the page's CSP does not govern) and runs it on
// the whole document.
func runAxe(p *tab, src string) []axeViolation {
	p.t.Helper()
	var loaded bool
	p.mustEval(`typeof window.axe === 'object'`, &loaded)
	if !loaded {
		p.mustEval(src+"\n;true", nil)
	}
	var raw string
	p.mustEval(`axe.run(document, { resultTypes: ['violations'] }).then((r) => JSON.stringify(r.violations.map((v) => ({
  id: v.id, impact: v.impact || '', help: v.help, nodes: v.nodes.length,
  targets: v.nodes.slice(0, 4).map((n) => n.target.join(' ')),
}))))`, &raw)
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		p.fail("axe's answer: %v", err)
	}
	return vs
}
