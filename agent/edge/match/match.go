// Package match finds the route or site that serves a request: the most
// specific host (exact before a one-label wildcard such as
// "*.example.com"), then the longest segment-aware path prefix. It is pure:
// a Table is built once from a configuration and read by any number of
// goroutines.
package match

import (
	"slices"
	"strings"
)

// Entry is one route or site as the table sees it.
type Entry struct {
	// Hosts are exact names ("app.example.com") or wildcards of one label
	// ("*.example.com"); compared case-insensitively, ports ignored.
	Hosts []string
	// Prefix is the path prefix ("" and "/" match every path; "/api" and
	// "/api/" both match "/api" and "/api/x", not "/apix").
	Prefix string
	// ID is the caller's handle, returned by Lookup.
	ID int
}

// Table answers Lookup. The zero value matches nothing.
type Table struct {
	exact map[string][]rule // by normalized host
	wild  map[string][]rule // by the part after "*."
}

type rule struct {
	prefix string // normalized: no trailing slash, "" for the root
	id     int
	order  int // position in the entries, for ties
}

// New builds a table. When two entries hold the same host and prefix, the
// first in entries wins (the control plane refuses such conflicts).
func New(entries []Entry) *Table {
	t := &Table{exact: map[string][]rule{}, wild: map[string][]rule{}}
	for i, e := range entries {
		r := rule{prefix: NormalizePrefix(e.Prefix), id: e.ID, order: i}
		for _, h := range e.Hosts {
			h = NormalizeHost(h)
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				t.wild[rest] = append(t.wild[rest], r)
			} else if h != "" {
				t.exact[h] = append(t.exact[h], r)
			}
		}
	}
	for _, m := range []map[string][]rule{t.exact, t.wild} {
		for _, rs := range m {
			slices.SortStableFunc(rs, func(a, b rule) int {
				if len(a.prefix) != len(b.prefix) {
					return len(b.prefix) - len(a.prefix)
				}
				return a.order - b.order
			})
		}
	}
	return t
}

// Lookup returns the ID of the entry that serves host and path, and the
// matched prefix in normalized form (no trailing slash, "" for the root).
func (t *Table) Lookup(host, path string) (id int, prefix string, ok bool) {
	if t == nil || len(t.exact)+len(t.wild) == 0 {
		return 0, "", false
	}
	h := NormalizeHost(host)
	if r, ok := first(t.exact[h], path); ok {
		return r.id, r.prefix, true
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		if r, ok := first(t.wild[h[i+1:]], path); ok {
			return r.id, r.prefix, true
		}
	}
	return 0, "", false
}

func first(rs []rule, path string) (rule, bool) {
	for _, r := range rs {
		if PrefixMatches(r.prefix, path) {
			return r, true
		}
	}
	return rule{}, false
}

// PrefixMatches reports whether the normalized prefix p matches path at a
// segment boundary.
func PrefixMatches(p, path string) bool {
	if p == "" {
		return true
	}
	if !strings.HasPrefix(path, p) {
		return false
	}
	return len(path) == len(p) || path[len(p)] == '/'
}

// NormalizePrefix turns a configured prefix into the form PrefixMatches
// takes: a leading slash, no trailing slash, "" for the root.
func NormalizePrefix(p string) string {
	p = strings.TrimRight(p, "/")
	if p != "" && p[0] != '/' {
		p = "/" + p
	}
	return p
}

// NormalizeHost lowercases a Host header value and drops its port and a
// trailing dot ("[::1]:80" → "::1", "Example.COM.:8080" → "example.com").
func NormalizeHost(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
