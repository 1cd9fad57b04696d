package compress

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestNegotiate(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "",
		"identity":                     "",
		"gzip":                         "gzip",
		"x-gzip":                       "gzip",
		"gzip, deflate, br, zstd":      "br",
		"gzip, zstd":                   "zstd",
		"br;q=0.5, gzip;q=0.8":         "gzip",
		"br;q=0, gzip;q=0":             "",
		"*":                            "br",
		"*;q=0.1, gzip":                "gzip",
		"br;q=0, *":                    "zstd",
		"GZIP;Q=1.0":                   "gzip",
		"zstd;q=0.9, br;q=0.9, gzip":   "gzip",
		"zstd;q=0.9, br;q=0.9":         "br",
		"br;q=abc, gzip":               "gzip",
		"br;q=2":                       "",
		" br ; q=0.3 , zstd ; q=0.2 ,": "br",
	} {
		if got := Negotiate(in); got != want {
			t.Errorf("Negotiate(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip, br;q=0.5", "*;q=0", "zstd;q=1.0;x=y", ";;,,=q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		switch got := Negotiate(s); got {
		case "", Brotli, Zstd, Gzip:
		default:
			t.Fatalf("Negotiate(%q) = %q", s, got)
		}
	})
}

func decode(t *testing.T, enc string, b []byte) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		return string(b)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", enc, err)
	}
	return string(out)
}

func serve(method, accept string, h http.HandlerFunc) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, "/", nil)
	req.Header.Set("Accept-Encoding", accept)
	if w := NewWriter(rec, req); w != nil {
		h(w, req)
		w.Close()
	} else {
		h(rec, req)
	}
	return rec
}

func TestWriter(t *testing.T) {
	big := strings.Repeat("hello, compressible world. ", 200)
	text := func(body string, hdr ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, body)
		}
	}
	cases := []struct {
		name, method, accept string
		h                    http.HandlerFunc
		wantEnc              string
	}{
		{"br", "GET", "gzip, br", text(big), "br"},
		{"zstd by q", "GET", "br;q=0.1, zstd", text(big), "zstd"},
		{"gzip", "GET", "gzip", text(big), "gzip"},
		{"known length", "GET", "gzip", text(big, "Content-Length", "5400"), "gzip"},
		{"small", "GET", "br", text("tiny"), ""},
		{"small by length", "GET", "br", text(big, "Content-Length", "100"), ""},
		{"already encoded", "GET", "br", text(big, "Content-Encoding", "identity2"), "identity2"},
		{"not text", "GET", "br", text(big, "Content-Type", "image/png"), ""},
		{"event stream", "GET", "br", text(big, "Content-Type", "text/event-stream"), ""},
		{"no accept", "GET", "", text(big), ""},
		{"head", "HEAD", "br", text(big), ""},
		{"partial", "GET", "br", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, big)
		}, ""},
		{"not modified", "GET", "br", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNotModified)
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(c.method, c.accept, c.h)
			if got := rec.Header().Get("Content-Encoding"); got != c.wantEnc {
				t.Fatalf("Content-Encoding %q, want %q", got, c.wantEnc)
			}
			if c.wantEnc == "br" || c.wantEnc == "gzip" || c.wantEnc == "zstd" {
				if got := decode(t, c.wantEnc, rec.Body.Bytes()); got != big {
					t.Fatalf("decoded body differs (%d bytes)", len(got))
				}
				if rec.Header().Get("Vary") != "Accept-Encoding" || rec.Header().Get("Content-Length") != "" {
					t.Fatalf("headers %v", rec.Header())
				}
				if rec.Body.Len() >= len(big) {
					t.Fatalf("not smaller: %d", rec.Body.Len())
				}
			}
			if c.name == "small" && (rec.Body.String() != "tiny" || rec.Header().Get("Content-Length") != "4") {
				t.Fatalf("small body %q, headers %v", rec.Body.String(), rec.Header())
			}
		})
	}
}

func TestFlushStartsTheStream(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	w := NewWriter(rec, req)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	io.WriteString(w, `{"a":1}`)
	w.Flush()
	if !rec.Flushed || rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("flushed %v, headers %v", rec.Flushed, rec.Header())
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(zr, buf); err != nil || string(buf) != `{"a":1}` {
		t.Fatalf("after a flush: %q, %v", buf, err)
	}
	w.Close()
}
