package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/containercodes/cc"

type pkg struct {
	dir       string
	imports   map[string]bool // of non-test files
	hasDoc    bool
	generated bool // every non-test file is generated
}

func loadPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s", root)
	}
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		p := pkgs[rel]
		if p == nil {
			p = &pkg{dir: filepath.ToSlash(rel), imports: map[string]bool{}, generated: true}
			pkgs[rel] = p
		}
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") {
			p.hasDoc = true
		}
		if strings.HasPrefix(f.Name.Name, "main") && f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Command ") {
			p.hasDoc = true
		}
		gen := false
		for _, cg := range f.Comments {
			if strings.Contains(cg.Text(), "Code generated") && strings.Contains(cg.Text(), "DO NOT EDIT") {
				gen = true
				break
			}
		}
		p.generated = p.generated && gen
		for _, imp := range f.Imports {
			v, _ := strconv.Unquote(imp.Path.Value)
			p.imports[v] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages; is the walk broken?", len(pkgs))
	}
	return pkgs
}

// The agent and the control plane speak only through proto/; ccctl speaks
// only the API.
func TestImportRules(t *testing.T) {
	rules := []struct {
		from      string
		forbidden []string
	}{
		{"agent", []string{module + "/controlplane", module + "/ctl"}},
		{"controlplane", []string{module + "/agent", module + "/ctl"}},
		{"ctl", []string{module + "/controlplane", module + "/agent"}},
		{"proto", []string{module + "/controlplane", module + "/agent", module + "/ctl", module + "/internal"}},
	}
	for _, p := range loadPackages(t) {
		for _, r := range rules {
			if p.dir != r.from && !strings.HasPrefix(p.dir, r.from+"/") {
				continue
			}
			for imp := range p.imports {
				for _, f := range r.forbidden {
					if imp == f || strings.HasPrefix(imp, f+"/") {
						t.Errorf("%s imports %s: %s/ must not depend on %s", p.dir, imp, r.from, strings.TrimPrefix(f, module+"/"))
					}
				}
			}
		}
	}
}

// The production libraries under internal/ are shared by the agent, the
// control plane and ccctl, so they depend on none of them; the test
// harnesses that drive a cluster live under internal/testing/.
func TestInternalIsShared(t *testing.T) {
	forbidden := []string{module + "/controlplane", module + "/agent"}
	for _, p := range loadPackages(t) {
		if !under(p.dir, "internal") || under(p.dir, "internal/testing") || under(p.dir, "internal/layout") {
			continue
		}
		for imp := range p.imports {
			for _, f := range forbidden {
				if under(imp, f) {
					t.Errorf("%s imports %s: a production package under internal/ must not depend on %s (test harnesses go under internal/testing/)",
						p.dir, imp, strings.TrimPrefix(f, module+"/"))
				}
			}
		}
	}
}

// deciders are the packages that make decisions as pure functions: no
// goroutines of their own and no I/O, the I/O is at their callers.
var deciders = []string{
	"internal/edgediff",
	"controlplane/scheduler",
	"controlplane/orchestrator",
	"controlplane/dispatch",
	"controlplane/edgeconfig",
	"agent/reconcile",
	"agent/health/healthstate",
	"agent/edge/match",
	"agent/edge/balance",
}

// What a decider must not import directly, by import path prefix: the raft
// log (raft, raft-boltdb, ...), the database, the network and the container
// runtime. (The generated proto packages that carry their inputs and
// outputs are fine, whatever they import.)
var deciderForbidden = []string{
	"github.com/hashicorp/raft",
	"go.etcd.io/bbolt",
	"google.golang.org/grpc",
	"github.com/containerd/",
	"net/http",
}

// The deciders stay pure: they import no raft, bbolt, gRPC, containerd or
// net/http.
func TestDecidersArePure(t *testing.T) {
	pkgs := loadPackages(t)
	found := 0
	for _, d := range deciders {
		n := 0
		for _, p := range pkgs {
			if !under(p.dir, d) {
				continue
			}
			n++
			for imp := range p.imports {
				for _, f := range deciderForbidden {
					if strings.HasPrefix(imp, f) {
						t.Errorf("%s imports %s: %s decides as a pure function and must not use %s directly; do the I/O in its caller",
							p.dir, imp, d, strings.TrimSuffix(f, "/"))
					}
				}
			}
		}
		if n == 0 {
			t.Logf("decider %s: no package there (yet); skipped", d)
			continue
		}
		found++
	}
	if found == 0 {
		t.Fatalf("none of the deciders %v has a package: is the list out of date?", deciders)
	}
}

// under reports whether the import path or directory p is dir or inside it
// (a prefix that ends at a path element).
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// Every hand-written package says what it is for.
func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range loadPackages(t) {
		if !p.hasDoc && !p.generated {
			t.Errorf("package in %s has no doc comment (\"// Package NAME ...\" or \"// Command NAME ...\")", p.dir)
		}
	}
}
