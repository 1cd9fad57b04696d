package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRecoverHTTP: a REST handler that panics answers 500 with a plain JSON
// error and its stack is logged; one that panics after answering has its
// connection cut; the server goes on serving (issue 14, #5).
func TestRecoverHTTP(t *testing.T) {
	var logs syncBuffer
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("secret internals") })
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		panic("late")
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	ts := httptest.NewServer(recoverHTTP(slog.New(slog.NewJSONHandler(&logs, nil)), mux))
	defer ts.Close()

	for i := 0; i < 3; i++ {
		resp, err := http.Get(ts.URL + "/boom")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		msg, _ := m["message"].(string)
		if resp.StatusCode != http.StatusInternalServerError || err != nil || m["code"] != float64(13) || msg == "" || strings.Contains(msg, "secret") {
			t.Errorf("a panicking handler: %s %v %v; want 500 with a plain JSON error", resp.Status, m, err)
		}

		if resp, err := http.Get(ts.URL + "/late"); err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Errorf("a handler that panicked after answering: the answer looks whole")
			}
		}

		resp, err = http.Get(ts.URL + "/ok")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("after a panic: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	out := logs.String()
	for _, want := range []string{`"msg":"panic in an HTTP handler"`, `"path":"/boom"`, `"panic":"secret internals"`, `"stack":"goroutine `, "httpguard_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
}

// TestLimitBodyDirect: the limit holds for a handler that reads the body
// itself, and a body at the limit passes.
func TestLimitBodyDirect(t *testing.T) {
	h := limitBody(10, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if _, over := bodyTooLarge(r); over {
			writeTooLarge(w, 10)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(b)
	}))
	for _, c := range []struct {
		body    string
		chunked bool
		code    int
	}{{"0123456789", false, 200}, {"0123456789", true, 200}, {"0123456789a", false, 413}, {"0123456789a", true, 413}} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
		if c.chunked {
			r.ContentLength = -1
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.code || (c.code == 413 && !strings.Contains(w.Body.String(), "limit of 10 bytes")) {
			t.Errorf("%d bytes (chunked %v): %d %s; want %d", len(c.body), c.chunked, w.Code, w.Body, c.code)
		}
	}
}
