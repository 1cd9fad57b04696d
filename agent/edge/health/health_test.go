package health

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPassiveEjection(t *testing.T) {
	var s State
	now := time.Unix(1000, 0)
	s.Failure(now)
	s.Failure(now)
	if !s.Usable(now) {
		t.Fatal("ejected after 2 failures")
	}
	s.Failure(now)
	if s.Usable(now) || s.Usable(now.Add(PassiveCoolDown-time.Millisecond)) {
		t.Fatal("not ejected after 3 failures")
	}
	later := now.Add(PassiveCoolDown)
	if !s.Usable(later) {
		t.Fatal("not back after the cool-down")
	}
	s.Failure(later) // on probation: one more failure ejects again
	if s.Usable(later) {
		t.Fatal("not ejected again on probation")
	}
	s.Success()
	s.Failure(later.Add(time.Hour))
	if !s.Usable(later.Add(time.Hour)) {
		t.Fatal("a success did not clear the count")
	}
}

func TestSyncKeepsState(t *testing.T) {
	r := NewRegistry(http.DefaultClient, slog.New(slog.DiscardHandler))
	defer r.Close()
	k := Key{Check: "web", Address: "127.0.0.1:1"}
	st := r.Sync([]Target{{Key: k}})[k]
	st.ejectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	for range 10 {
		if got := r.Sync([]Target{{Key: k}, {Key: Key{Check: "web", Address: "127.0.0.1:2"}}})[k]; got != st {
			t.Fatal("Sync with the same key made a new state")
		}
	}
	if st.Usable(time.Now()) {
		t.Fatal("state lost")
	}
	r.Sync(nil)
	if got := r.Sync([]Target{{Key: k}})[k]; got == st || !got.Usable(time.Now()) {
		t.Fatal("a removed then re-added key kept its old state")
	}
}

func TestActiveCheckDownAndUp(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	r := NewRegistry(srv.Client(), slog.New(slog.DiscardHandler))
	defer r.Close()
	k := Key{Check: "web/healthz", Address: strings.TrimPrefix(srv.URL, "http://")}
	st := r.Sync([]Target{{Key: k, Check: Check{Path: "/healthz", Interval: 10 * time.Millisecond, Fails: 2, Passes: 2}}})[k]
	if !st.Usable(time.Now()) {
		t.Fatal("a new upstream is not usable")
	}
	healthy.Store(false)
	waitFor(t, func() bool { return st.Down() })
	// Requests failed meanwhile too: ejected for the cool-down.
	for range PassiveFails {
		st.Failure(time.Now())
	}
	healthy.Store(true)
	waitFor(t, func() bool { return !st.Down() })
	// Back up by the check, the ejection is over as well.
	if !st.Usable(time.Now()) {
		t.Fatal("an upstream the check put back is still ejected")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
