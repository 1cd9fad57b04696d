package compress

import (
	"strconv"
	"strings"
)

// The encodings, in the order preferred when the client weighs them the
// same.
const (
	Brotli = "br"
	Zstd   = "zstd"
	Gzip   = "gzip"
)

var preferred = [...]string{Brotli, Zstd, Gzip}

// Negotiate picks the encoding for an Accept-Encoding value: the one with
// the highest q-value ("*" stands for those not named; q=0 refuses), br
// before zstd before gzip on a tie, "" when none is acceptable.
func Negotiate(accept string) string {
	var q [len(preferred)]float64
	for i := range q {
		q[i] = -1 // not named
	}
	star := -1.0
	for part := range strings.SplitSeq(accept, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		w := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(p, "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 || f != f {
					f = 0
				}
				w = f
			}
		}
		if name == "*" {
			star = w
			continue
		}
		if name == "x-gzip" {
			name = Gzip
		}
		for i, e := range preferred {
			if e == name && w > q[i] {
				q[i] = w
			}
		}
	}
	best, bestQ := "", 0.0
	for i, e := range preferred {
		w := q[i]
		if w < 0 {
			w = max(star, 0)
		}
		if w > bestQ {
			best, bestQ = e, w
		}
	}
	return best
}
