package static

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// errBadPath is a request path that is refused with 400.
var errBadPath = errors.New("bad path")

// resolvePath turns a request's escaped path into a manifest path: clean,
// relative, "" for the site's root, and whether it ended with "/". It
// decodes once and refuses (errBadPath) a path that does not start with
// "/", an encoded "/", "\" or NUL, a decoded NUL, backslash, control
// character or invalid UTF-8, and any ".", ".." or empty segment: a
// traversal is refused, never cleaned into something else. Whatever comes
// out is only looked up in the manifest, so a double-encoded "%252e%252e"
// is just a name no file has.
func resolvePath(escaped string) (p string, dir bool, err error) {
	if escaped == "" {
		escaped = "/"
	}
	if escaped[0] != '/' {
		return "", false, errBadPath
	}
	lower := strings.ToLower(escaped)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%00") {
		return "", false, errBadPath
	}
	dec, err := url.PathUnescape(escaped)
	if err != nil || !utf8.ValidString(dec) {
		return "", false, errBadPath
	}
	for _, r := range dec {
		if r == '\\' || unicode.IsControl(r) {
			return "", false, errBadPath
		}
	}
	rest := dec[1:]
	dir = rest == "" || strings.HasSuffix(rest, "/")
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return "", true, nil
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", false, errBadPath
		}
	}
	return rest, dir, nil
}

// byteRange is [start, start+length) of the file.
type byteRange struct{ start, length int64 }

var (
	// errRangeInvalid: a Range header that is ignored (the full file is
	// sent), as RFC 9110 allows for one the server cannot use.
	errRangeInvalid = errors.New("invalid range")
	// errRangeUnsatisfiable: no range overlaps the file (416).
	errRangeUnsatisfiable = errors.New("range not satisfiable")
)

// maxRanges bounds the ranges of one request; more make the header
// invalid (ignored), so a request cannot ask for thousands of parts.
const maxRanges = 32

// parseRange parses a Range header (RFC 9110 §14.1.2) against a file of
// size bytes. The unit "bytes" is case-insensitive; "a-b", "a-" and "-n"
// are understood; last positions past the end are cut to it; a range
// starting past the end (or a suffix of 0) is skipped, and if every one
// is, the result is errRangeUnsatisfiable. Bad syntax, b < a, another unit
// or more than maxRanges ranges give errRangeInvalid.
func parseRange(h string, size int64) ([]byteRange, error) {
	unit, set, ok := strings.Cut(strings.TrimSpace(h), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return nil, errRangeInvalid
	}
	var out []byteRange
	n := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			continue
		}
		if n++; n > maxRanges {
			return nil, errRangeInvalid
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return nil, errRangeInvalid
		}
		if first == "" {
			suffix, ok := parseDigits(last)
			if !ok {
				return nil, errRangeInvalid
			}
			if suffix == 0 || size == 0 {
				continue
			}
			suffix = min(suffix, size)
			out = append(out, byteRange{size - suffix, suffix})
			continue
		}
		start, ok := parseDigits(first)
		if !ok {
			return nil, errRangeInvalid
		}
		end := size - 1
		if last != "" {
			e, ok := parseDigits(last)
			if !ok || e < start {
				return nil, errRangeInvalid
			}
			end = min(e, size-1)
		}
		if start >= size {
			continue
		}
		out = append(out, byteRange{start, end - start + 1})
	}
	if n == 0 {
		return nil, errRangeInvalid
	}
	if len(out) == 0 {
		return nil, errRangeUnsatisfiable
	}
	return out, nil
}

// parseDigits parses 1*DIGIT without sign or spaces; false on overflow.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// coding is one element of Accept-Encoding: a lower-case content coding
// (or "*") and its weight in thousandths.
type coding struct {
	name string
	q    int
}

// parseAcceptEncoding parses an Accept-Encoding value (RFC 9110 §12.5.3).
// Elements with a malformed name or q-value are skipped; other parameters
// are ignored.
func parseAcceptEncoding(h string) []coding {
	var out []coding
	for elem := range strings.SplitSeq(h, ",") {
		name, params, _ := strings.Cut(elem, ";")
		name = strings.ToLower(strings.Trim(name, " \t"))
		if !isToken(name) {
			continue
		}
		c := coding{name: name, q: 1000}
		ok := true
		for param := range strings.SplitSeq(params, ";") {
			k, v, found := strings.Cut(strings.Trim(param, " \t"), "=")
			if !found || !strings.EqualFold(strings.Trim(k, " \t"), "q") {
				continue
			}
			c.q, ok = parseQ(strings.Trim(v, " \t"))
		}
		if ok {
			out = append(out, c)
		}
	}
	return out
}

// parseQ parses a qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")].
func parseQ(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return q, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		q += int(s[i]-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// chooseEncoding picks the content coding to send among available (in the
// order of preference at equal weight, e.g. br, zstd, gzip), "" for
// identity. With no header, identity. A coding's weight is its own
// element's, else "*"'s, else 0 (not acceptable); q=0 excludes. The
// heaviest acceptable coding is sent, unless identity is listed (itself or
// through "*") with a greater weight; identity not listed is acceptable
// but comes last ("gzip;q=0.2" still gets gzip). When nothing is
// acceptable, not even identity,
// identity is sent anyway (RFC 9110 lets a server disregard the header
// rather than answer 406).
func chooseEncoding(h string, present bool, available []string) string {
	if !present {
		return ""
	}
	prefs := parseAcceptEncoding(h)
	weight := func(name string) (int, bool) {
		star, hasStar := 0, false
		for _, c := range prefs {
			if c.name == name || (name == "gzip" && c.name == "x-gzip") {
				return c.q, true
			}
			if c.name == "*" && !hasStar {
				star, hasStar = c.q, true
			}
		}
		return star, hasStar
	}
	identity, listed := weight("identity")
	best, bestQ := "", 0
	for _, enc := range available {
		if q, _ := weight(enc); q > bestQ {
			best, bestQ = enc, q
		}
	}
	if best != "" && (!listed || bestQ >= identity) {
		return best
	}
	return ""
}

// etagMatchWeak tells whether an If-None-Match value matches etag, by the
// weak comparison (RFC 9110 §13.1.2): "*" matches, W/ is ignored. A
// malformed list matches nothing after the error.
func etagMatchWeak(h, etag string) bool {
	h = strings.Trim(h, " \t")
	if h == "*" {
		return true
	}
	for h != "" {
		h = strings.TrimLeft(h, " \t,")
		if h == "" {
			break
		}
		tag, _, rest, ok := scanETag(h)
		if !ok {
			return false
		}
		if tag == etag {
			return true
		}
		h = rest
	}
	return false
}

// etagMatchStrong tells whether an If-Range entity tag matches etag by the
// strong comparison: the same opaque tag, neither weak.
func etagMatchStrong(h, etag string) bool {
	tag, weak, rest, ok := scanETag(strings.Trim(h, " \t"))
	return ok && !weak && strings.Trim(rest, " \t") == "" && tag == etag
}

// scanETag reads one entity-tag from the start of s: its quoted opaque
// tag, whether it was weak, and the rest of s.
func scanETag(s string) (tag string, weak bool, rest string, ok bool) {
	if strings.HasPrefix(s, "W/") {
		weak, s = true, s[2:]
	}
	if len(s) < 2 || s[0] != '"' {
		return "", false, "", false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return s[:i+1], weak, s[i+1:], true
		case c == 0x21 || c >= 0x23 && c != 0x7f:
		default:
			return "", false, "", false
		}
	}
	return "", false, "", false
}
