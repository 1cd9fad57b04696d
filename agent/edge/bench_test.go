package edge

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// BenchmarkProxy is one GET through the edge to a local upstream serving
// 1 KiB, over keep-alive connections, in parallel: the proxy's own cost
// (go test -bench Proxy -cpuprofile cpu.out ./agent/edge/ to see where it
// goes).
func BenchmarkProxy(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, body)
	}))
	defer up.Close()
	s, err := New(Options{HTTPAddr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	go s.Run(b.Context())
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", strings.TrimPrefix(up.URL, "http://"))}})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	url := "http://" + s.Addr().String() + "/"
	b.SetBytes(1024)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "app.test"
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkLookup is the route table's cost for a table of 1,000 routes.
func BenchmarkLookup(b *testing.B) {
	var routes []*ccv1.EdgeRoute
	for i := 0; i < 1000; i++ {
		routes = append(routes, mkRoute("r", "app"+strings.Repeat("x", i%7)+".test", "/p"+strings.Repeat("/q", i%5), "127.0.0.1:1"))
	}
	s, err := New(Options{HTTPAddr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.ln.Close()
	s.Update(Config{Routes: routes})
	t := s.table.Load()
	b.ResetTimer()
	for b.Loop() {
		t.match.Lookup("APPxxx.test:80", "/p/q/q/z")
	}
}
