// Package readiness runs a program's dependency checks and answers
// /readyz and /healthz with them as JSON: /readyz is 200 when every
// required check passes and 503 otherwise; /healthz (liveness) is 200 as
// long as the process serves HTTP at all.
package readiness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"text/tabwriter"
	"time"
)

// Check is one dependency check.
type Check struct {
	// Name is short and stable ("raft", "containerd"): monitors key on it.
	Name string
	// Required checks make the program not ready when they fail; the
	// others are reported only (a warning).
	Required bool
	// Run returns a detail for a passing check ("leader s-1 at
	// 10.0.0.5:7444"), or an error that says what is wrong and what to
	// do. It must return within its context's deadline.
	Run func(ctx context.Context) (detail string, err error)
}

// Result is a check's outcome, as /readyz answers it.
type Result struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Required bool   `json:"required"`
	// Message is the detail of a passing check or the error of a
	// failing one.
	Message string `json:"message,omitempty"`
}

// Report is the outcome of every check.
type Report struct {
	// Status is "ready" or "not ready".
	Status string   `json:"status"`
	Checks []Result `json:"checks"`
}

// Ready says whether every required check passed.
func (r Report) Ready() bool { return r.Status == StatusReady }

// Values of Report.Status.
const (
	StatusReady    = "ready"
	StatusNotReady = "not ready"
)

// CheckTimeout bounds each check of Run.
const CheckTimeout = 2 * time.Second

// Run runs the checks at once, each under CheckTimeout, and reports them
// in their order.
func Run(ctx context.Context, checks []Check) Report {
	out := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			detail, err := c.Run(cctx)
			r := Result{Name: c.Name, Required: c.Required, OK: err == nil, Message: detail}
			if err != nil {
				r.Message = err.Error()
			}
			out[i] = r
		})
	}
	wg.Wait()
	rep := Report{Status: StatusReady, Checks: out}
	for _, r := range out {
		if r.Required && !r.OK {
			rep.Status = StatusNotReady
		}
	}
	return rep
}

// Handler answers GET /readyz with the Report of checks() (200 when
// ready, 503 when not) and GET /healthz with {"status":"ok"}.
func Handler(checks func() []Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", Healthz)
	mux.Handle("GET /readyz", Readyz(checks))
	return mux
}

// Readyz answers with the Report of checks(): 200 when ready, 503 when
// not.
func Readyz(checks func() []Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := Run(r.Context(), checks())
		code := http.StatusOK
		if !rep.Ready() {
			code = http.StatusServiceUnavailable
		}
		WriteJSON(w, code, rep)
	})
}

// Healthz is the liveness answer: the process serves.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// WriteJSON writes v as an indented JSON body with code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Print writes the report as a table for a person.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "Status: %s\n", r.Status)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "CHECK\tOK\tREQUIRED\tMESSAGE\n")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, yesNo(c.OK), yesNo(c.Required), c.Message)
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
