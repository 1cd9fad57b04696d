package match

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	tab := New([]Entry{
		{Hosts: []string{"app.example.com"}, Prefix: "/", ID: 1},
		{Hosts: []string{"app.example.com"}, Prefix: "/api/", ID: 2},
		{Hosts: []string{"app.example.com"}, Prefix: "/api/v2", ID: 3},
		{Hosts: []string{"*.example.com"}, Prefix: "/", ID: 4},
		{Hosts: []string{"*.example.com"}, Prefix: "/deep/path", ID: 5},
		{Hosts: []string{"other.test", "Alias.Test"}, Prefix: "/x", ID: 6},
	})
	cases := []struct {
		host, path string
		id         int
		ok         bool
	}{
		{"app.example.com", "/", 1, true},
		{"APP.example.com:8080", "/index.html", 1, true},
		{"app.example.com.", "/", 1, true},
		{"app.example.com", "/api", 2, true},
		{"app.example.com", "/api/", 2, true},
		{"app.example.com", "/api/x", 2, true},
		{"app.example.com", "/apix", 1, true},
		{"app.example.com", "/api/v2", 3, true},
		{"app.example.com", "/api/v2/users", 3, true},
		{"app.example.com", "/api/v20", 2, true},
		// exact host wins over a wildcard with a longer prefix
		{"app.example.com", "/deep/path", 1, true},
		{"www.example.com", "/deep/path/x", 5, true},
		{"www.example.com", "/", 4, true},
		{"a.b.example.com", "/", 0, false}, // one label only
		{"example.com", "/", 0, false},
		{"other.test", "/x/y", 6, true},
		{"alias.test", "/x", 6, true},
		{"other.test", "/", 0, false},
		{"[::1]:80", "/", 0, false},
		{"", "/", 0, false},
	}
	for _, c := range cases {
		id, _, ok := tab.Lookup(c.host, c.path)
		if ok != c.ok || (ok && id != c.id) {
			t.Errorf("Lookup(%q, %q) = %d, %v; want %d, %v", c.host, c.path, id, ok, c.id, c.ok)
		}
	}
	var empty *Table
	if _, _, ok := empty.Lookup("a", "/"); ok {
		t.Error("nil table matched")
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM":      "example.com",
		"example.com:80":   "example.com",
		"[::1]:8080":       "::1",
		"[::1]":            "::1",
		"::1":              "::1",
		"example.com.:443": "example.com",
		"":                 "",
	} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// referenceLookup is Lookup written the obvious way: every entry, every
// host, scored; the best score wins, the first entry on a tie.
func referenceLookup(entries []Entry, host, path string) (int, bool) {
	h := strings.ToLower(host)
	if strings.HasPrefix(h, "[") && strings.Contains(h, "]") {
		h = h[1:strings.Index(h, "]")] // "[::1]:80" → "::1"
	} else if i := strings.LastIndex(h, ":"); i >= 0 && strings.Count(h, ":") == 1 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	best, bestScore := 0, -1
	for _, e := range entries {
		p := strings.TrimRight(e.Prefix, "/")
		if p != "" && !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if !(p == "" || path == p || strings.HasPrefix(path, p+"/")) {
			continue
		}
		for _, eh := range e.Hosts {
			eh = strings.TrimSuffix(strings.ToLower(eh), ".")
			if eh == "" {
				continue
			}
			exact := 0
			switch {
			case eh == h:
				exact = 1
			case strings.HasPrefix(eh, "*.") && strings.Contains(h, ".") && !strings.HasPrefix(h, ".") &&
				h[strings.Index(h, ".")+1:] == eh[2:]:
			default:
				continue
			}
			score := exact*1_000_000 + len(p)
			if score > bestScore {
				best, bestScore = e.ID, score
			}
		}
	}
	return best, bestScore >= 0
}

func TestAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hosts := []string{"a.test", "b.test", "x.a.test", "y.a.test", "A.Test", "*.a.test", "*.test", "*.b.test", "c"}
	paths := []string{"", "/", "/static//css", "api/", "/api", "/api/", "/api/v1", "/apiv", "/static/css", "/static", "/s"}
	reqPaths := []string{"/", "//", "/api//x", "/static/css/", "x/api", "/api/v1/", "/api", "/api/", "/api/v1/x", "/apiv", "/static/css/a.css", "/static", "/s/t", "/x", ""}
	reqHosts := []string{"a.test", "A.TEST:80", "x.a.test", "z.a.test", "q.b.test", "b.test", "c", "c:1", "d.c", "a.test."}
	for round := 0; round < 3000; round++ {
		n := rng.IntN(8)
		var entries []Entry
		for i := 0; i < n; i++ {
			var hs []string
			for j := 0; j <= rng.IntN(3); j++ {
				hs = append(hs, hosts[rng.IntN(len(hosts))])
			}
			entries = append(entries, Entry{Hosts: hs, Prefix: paths[rng.IntN(len(paths))], ID: i})
		}
		tab := New(entries)
		for _, h := range reqHosts {
			for _, p := range reqPaths {
				got, _, gok := tab.Lookup(h, p)
				want, wok := referenceLookup(entries, h, p)
				if gok != wok || got != want {
					t.Fatalf("round %d: Lookup(%q, %q) = %d, %v; reference %d, %v\nentries: %+v", round, h, p, got, gok, want, wok, entries)
				}
			}
		}
	}
}

func FuzzLookup(f *testing.F) {
	f.Add("app.example.com", "/api/x")
	f.Add("[::1]:80", "/")
	f.Add("x.example.com.", "//")
	f.Add("*.example.com", "/api")
	entries := []Entry{
		{Hosts: []string{"app.example.com"}, Prefix: "/api/", ID: 1},
		{Hosts: []string{"app.example.com"}, Prefix: "/", ID: 2},
		{Hosts: []string{"*.example.com"}, Prefix: "/", ID: 3},
		{Hosts: []string{"::1"}, Prefix: "/a", ID: 4},
	}
	tab := New(entries)
	f.Fuzz(func(t *testing.T, host, path string) {
		got, _, gok := tab.Lookup(host, path)
		want, wok := referenceLookup(entries, host, path)
		if got != want || gok != wok {
			t.Fatalf("Lookup(%q, %q) = %d, %v; reference %d, %v", host, path, got, gok, want, wok)
		}
	})
}
