package readiness

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestReadyz(t *testing.T) {
	pass := func(context.Context) (string, error) { return "fine", nil }
	fail := func(context.Context) (string, error) { return "", errors.New("broken: fix it") }
	for _, tc := range []struct {
		name   string
		checks []Check
		code   int
	}{
		{"all pass", []Check{{Name: "a", Required: true, Run: pass}, {Name: "b", Run: pass}}, 200},
		{"an optional one fails", []Check{{Name: "a", Required: true, Run: pass}, {Name: "b", Run: fail}}, 200},
		{"a required one fails", []Check{{Name: "a", Required: true, Run: fail}, {Name: "b", Run: pass}}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler(func() []Check { return tc.checks }).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			var rep Report
			if rec.Code != tc.code || json.Unmarshal(rec.Body.Bytes(), &rep) != nil || len(rep.Checks) != 2 || rep.Ready() != (tc.code == 200) {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			for i, c := range rep.Checks {
				if c.Name != tc.checks[i].Name || c.Required != tc.checks[i].Required || (c.OK && c.Message != "fine") || (!c.OK && c.Message != "broken: fix it") {
					t.Errorf("check %d: %+v", i, c)
				}
			}
		})
	}
	rec := httptest.NewRecorder()
	Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/healthz: %d %s", rec.Code, rec.Body)
	}
}
