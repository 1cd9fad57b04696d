package layout

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// architectureDoc is the package map that docs/architecture.md keeps.
const architectureDoc = "docs/architecture.md"

// docRow is a row of the package table: | `dir` | job | I/O |.
var docRow = regexp.MustCompile("^\\| `([a-z0-9_/.-]+)` \\|")

// docPackages returns the packages docs/architecture.md lists, in order.
func docPackages(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", architectureDoc))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, line := range strings.Split(string(b), "\n") {
		if m := docRow.FindStringSubmatch(line); m != nil {
			dirs = append(dirs, m[1])
		}
	}
	if len(dirs) < 10 {
		t.Fatalf("%s lists only %d packages in its table; is the table format (| `dir` | ... |) changed?", architectureDoc, len(dirs))
	}
	return dirs
}

// documented says whether a package belongs in the map: every hand-written
// package of the products, not commands' mains, test harnesses, generated
// code or the benchmarks.
func documented(p *pkg) bool {
	switch {
	case p.generated, under(p.dir, "internal/testing"), under(p.dir, "bench"),
		strings.Contains(p.dir, "/cmd/"), strings.Contains(p.dir, "/internal/"):
		return false
	}
	return true
}

// The architecture document lists every package, only packages that exist,
// and in layer order: a package uses only packages listed above it.
func TestArchitectureDocMatchesTheTree(t *testing.T) {
	pkgs := loadPackages(t)
	byDir := map[string]*pkg{}
	for _, p := range pkgs {
		byDir[p.dir] = p
	}
	listed := docPackages(t)
	pos := map[string]int{}
	for i, d := range listed {
		if _, dup := pos[d]; dup {
			t.Errorf("%s lists %s twice", architectureDoc, d)
		}
		pos[d] = i
		if byDir[d] == nil {
			t.Errorf("%s lists %s, which is not a package of the tree: remove or rename its row", architectureDoc, d)
		}
	}
	for _, p := range pkgs {
		if !documented(p) {
			continue
		}
		at, ok := pos[p.dir]
		if !ok {
			t.Errorf("%s has no row for package %s: add one (| `%s` | its job | its I/O |) below the packages it uses", architectureDoc, p.dir, p.dir)
			continue
		}
		for imp := range p.imports {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if !ok || under(dep, "proto") {
				continue
			}
			if i, ok := pos[dep]; ok && i > at {
				t.Errorf("%s lists %s above %s, which it imports: the table is in layer order (a package uses only those above it)", architectureDoc, p.dir, dep)
			}
		}
	}
}
