package static

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestResolvePath(t *testing.T) {
	cases := []struct {
		in   string
		want string
		dir  bool
		bad  bool
	}{
		{in: "", want: "", dir: true},
		{in: "/", want: "", dir: true},
		{in: "/a.html", want: "a.html"},
		{in: "/docs/", want: "docs", dir: true},
		{in: "/a%20b.txt", want: "a b.txt"},
		{in: "/caf%C3%A9", want: "café"},
		{in: "/%252e%252e", want: "%2e%2e"},
		{in: "a", bad: true},
		{in: "/../etc/passwd", bad: true},
		{in: "/%2e%2e/etc", bad: true},
		{in: "/%2E%2E/etc", bad: true},
		{in: "/..%2fetc", bad: true},
		{in: "/..%2Fetc", bad: true},
		{in: "/a/./b", bad: true},
		{in: "/a//b", bad: true},
		{in: `/a\b`, bad: true},
		{in: "/a%5cb", bad: true},
		{in: "/a%00", bad: true},
		{in: "/a%0a", bad: true},
		{in: "/%ff", bad: true},
		{in: "/%zz", bad: true},
		{in: "/a/..", bad: true},
	}
	for _, c := range cases {
		got, dir, err := resolvePath(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%q: %q, want refused", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want || dir != c.dir {
			t.Errorf("%q: %q %v %v, want %q %v", c.in, got, dir, err, c.want, c.dir)
		}
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		in   string
		size int64
		want []byteRange
		err  error
	}{
		{"bytes=0-0", 10, []byteRange{{0, 1}}, nil},
		{"bytes=0-", 10, []byteRange{{0, 10}}, nil},
		{"bytes=-1", 10, []byteRange{{9, 1}}, nil},
		{"bytes=-100", 10, []byteRange{{0, 10}}, nil},
		{"bytes=5-100", 10, []byteRange{{5, 5}}, nil},
		{"BYTES = 1-2 , 4-5", 10, []byteRange{{1, 2}, {4, 2}}, nil},
		{"bytes=1-2,,", 10, []byteRange{{1, 2}}, nil},
		{"bytes=10-, 1-1", 10, []byteRange{{1, 1}}, nil},
		{"bytes=10-", 10, nil, errRangeUnsatisfiable},
		{"bytes=-0", 10, nil, errRangeUnsatisfiable},
		{"bytes=0-", 0, nil, errRangeUnsatisfiable},
		{"bytes=-5", 0, nil, errRangeUnsatisfiable},
		{"bytes=5-1", 10, nil, errRangeInvalid},
		{"bytes=", 10, nil, errRangeInvalid},
		{"bytes=a-b", 10, nil, errRangeInvalid},
		{"bytes=+1-2", 10, nil, errRangeInvalid},
		{"bytes=1 -2", 10, nil, errRangeInvalid},
		{"bytes=-", 10, nil, errRangeInvalid},
		{"bytes=1", 10, nil, errRangeInvalid},
		{"items=1-2", 10, nil, errRangeInvalid},
		{"bytes=99999999999999999999-", 10, nil, errRangeInvalid},
		{"bytes=" + strings.Repeat("0-0,", maxRanges+1), 10, nil, errRangeInvalid},
	}
	for _, c := range cases {
		got, err := parseRange(c.in, c.size)
		if !errors.Is(err, c.err) || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q (size %d): %v %v, want %v %v", c.in, c.size, got, err, c.want, c.err)
		}
	}
}

func TestChooseEncoding(t *testing.T) {
	all := []string{"br", "zstd", "gzip"}
	cases := []struct {
		in    string
		avail []string
		want  string
	}{
		{"gzip, deflate, br, zstd", all, "br"},
		{"gzip, zstd", all, "zstd"},
		{"gzip", all, "gzip"},
		{"GZIP", all, "gzip"},
		{"br;q=0.1, gzip;q=0.2", all, "gzip"},
		{"br;q=1.000, gzip;q=1", all, "br"},
		{"br;q=0", all, ""},
		{"br;q=0, *", all, "zstd"},
		{"*;q=0.5", all, "br"},
		{"*;q=0.5, identity", all, ""},
		{"identity;q=0", all, ""},
		{"identity;q=0, gzip;q=0.001", all, "gzip"},
		{"br;q=2", all, ""},
		{"br;q=0.1234", all, ""},
		{"br;q=", all, ""},
		{"br ; q = 0.5 , gzip;q=0.4", all, "br"},
		{"br;level=1", all, "br"},
		{"x-gzip", all, "gzip"},
		{"br", []string{"gzip"}, ""},
		{"", all, ""},
		{",,, br", all, "br"},
	}
	for _, c := range cases {
		if got := chooseEncoding(c.in, true, c.avail); got != c.want {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
	if got := chooseEncoding("", false, all); got != "" {
		t.Errorf("no header: %q", got)
	}
}

func TestETagMatch(t *testing.T) {
	tag := `"sha256-abc"`
	weak := []struct {
		h    string
		want bool
	}{
		{`"sha256-abc"`, true},
		{`W/"sha256-abc"`, true},
		{` "x" , W/"y",  "sha256-abc" `, true},
		{`*`, true},
		{`"sha256-abcd"`, false},
		{`sha256-abc`, false},
		{`"x", garbage, "sha256-abc"`, false},
		{``, false},
	}
	for _, c := range weak {
		if got := etagMatchWeak(c.h, tag); got != c.want {
			t.Errorf("weak %q: %v", c.h, got)
		}
	}
	if !etagMatchStrong(tag, tag) || etagMatchStrong("W/"+tag, tag) || etagMatchStrong(tag+", "+tag, tag) {
		t.Error("strong comparison")
	}
}

func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"/", "/a/b.html", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc", "/%252e%252e/x", `/a\..\b`, "/a%00b", "//x", "/docs/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, dir, err := resolvePath(in)
		if err != nil {
			if p != "" || dir {
				t.Fatalf("refused with a result: %q %v", p, dir)
			}
			return
		}
		if p == "" {
			if !dir {
				t.Fatal("the root is not a directory")
			}
			return
		}
		if !utf8.ValidString(p) || strings.ContainsAny(p, "\\\x00") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
			t.Fatalf("%q resolved to %q", in, p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q resolved to %q, with segment %q", in, p, seg)
			}
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-4", "bytes=-5", "bytes=5-", "bytes=0-1,4-5", "bytes=100-", "bytes=5-1", "BYTES=1-2, ,3-4", "bytes=-0"} {
		f.Add(s, int64(20))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		ranges, err := parseRange(h, size)
		if err != nil {
			if ranges != nil || (err != errRangeInvalid && err != errRangeUnsatisfiable) {
				t.Fatalf("%q: %v %v", h, ranges, err)
			}
			return
		}
		if len(ranges) == 0 || len(ranges) > maxRanges {
			t.Fatalf("%q: %d ranges", h, len(ranges))
		}
		for _, r := range ranges {
			if r.start < 0 || r.length <= 0 || r.start+r.length > size || r.start+r.length < r.start {
				t.Fatalf("%q (size %d): range %+v outside the file", h, size, r)
			}
		}
	})
}

func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"gzip, deflate, br, zstd", "br;q=0.5, gzip;q=1.0", "*;q=0", "identity;q=0, zstd;q=0.1", "br;q=1.0001", "x-gzip", ""} {
		f.Add(s)
	}
	all := []string{"br", "zstd", "gzip"}
	f.Fuzz(func(t *testing.T, h string) {
		for _, c := range parseAcceptEncoding(h) {
			if c.q < 0 || c.q > 1000 || !isToken(c.name) {
				t.Fatalf("%q: %+v", h, c)
			}
		}
		got := chooseEncoding(h, true, all)
		if got != "" && got != "br" && got != "zstd" && got != "gzip" {
			t.Fatalf("%q: %q", h, got)
		}
		if got != "" {
			// A coding chosen is never one the client excluded.
			for _, c := range parseAcceptEncoding(h) {
				if c.name == got || (got == "gzip" && c.name == "x-gzip") {
					if c.q == 0 {
						t.Fatalf("%q: chose %s with q=0", h, got)
					}
					break
				}
			}
		}
		if got := chooseEncoding(h, true, nil); got != "" {
			t.Fatalf("%q: chose %q from nothing", h, got)
		}
	})
}
