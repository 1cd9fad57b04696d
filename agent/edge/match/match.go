// Package match finds the route or site that serves a request: the most
// specific host (exact before a one-label wildcard such as
// "*.example.com"), then the longest segment-aware path prefix. It is pure:
// a Table is built once from a configuration and read by any number of
// goroutines.
package match

import (
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
	exact map[string]prefixes // by normalized host
	wild  map[string]prefixes // by the part after "*."
}

// prefixes are one host's entries by normalized prefix: Lookup tries the
// path's own segment prefixes, longest first, so a host with many routes
// costs one map access per path segment, not one comparison per route.
type prefixes map[string]int

// New builds a table. When two entries hold the same host and prefix, the
// first in entries wins (the control plane refuses such conflicts).
func New(entries []Entry) *Table {
	t := &Table{exact: map[string]prefixes{}, wild: map[string]prefixes{}}
	add := func(m map[string]prefixes, host, prefix string, id int) {
		ps := m[host]
		if ps == nil {
			ps = prefixes{}
			m[host] = ps
		}
		if _, taken := ps[prefix]; !taken {
			ps[prefix] = id
		}
	}
	for _, e := range entries {
		p := NormalizePrefix(e.Prefix)
		for _, h := range e.Hosts {
			h = NormalizeHost(h)
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				add(t.wild, rest, p, e.ID)
			} else if h != "" {
				add(t.exact, h, p, e.ID)
			}
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
	if ps := t.exact[h]; ps != nil {
		if id, p, ok := ps.longest(path); ok {
			return id, p, true
		}
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		if ps := t.wild[h[i+1:]]; ps != nil {
			if id, p, ok := ps.longest(path); ok {
				return id, p, true
			}
		}
	}
	return 0, "", false
}

// longest finds the longest prefix of path, at a segment boundary, that
// has an entry: path itself (without a trailing slash), then cut at each
// '/' from the right, then the root.
func (ps prefixes) longest(path string) (int, string, bool) {
	p := strings.TrimRight(path, "/")
	if len(p) > 0 && p[0] == '/' {
		for {
			if id, ok := ps[p]; ok {
				return id, p, true
			}
			i := strings.LastIndexByte(p, '/')
			if i <= 0 {
				break
			}
			p = strings.TrimRight(p[:i], "/")
			if p == "" {
				break
			}
		}
	}
	if id, ok := ps[""]; ok {
		return id, "", true
	}
	return 0, "", false
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
