package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ReloadResult is what a reload of the config file did: the answer of
// PathReload, and what the program logs.
type ReloadResult struct {
	// File is the config file read.
	File string `json:"file"`
	// Applied lists the changes in force now, as "key: old -> new".
	Applied []string `json:"applied,omitempty"`
	// Restart lists changed keys that take effect at the next start.
	Restart []string `json:"restart,omitempty"`
	// Problems say why the file was refused (with their lines); then
	// nothing changed.
	Problems []string `json:"problems,omitempty"`
}

// OK says whether the file was taken.
func (r ReloadResult) OK() bool { return len(r.Problems) == 0 }

// Print writes the result for a person.
func (r ReloadResult) Print(w io.Writer) {
	if !r.OK() {
		fmt.Fprintf(w, "%s refused; the running configuration is kept:\n", r.File)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
		return
	}
	if len(r.Applied) == 0 && len(r.Restart) == 0 {
		fmt.Fprintf(w, "%s reloaded: no change\n", r.File)
		return
	}
	fmt.Fprintf(w, "%s reloaded.\n", r.File)
	if len(r.Applied) > 0 {
		fmt.Fprintf(w, "Applied now:\n  %s\n", strings.Join(r.Applied, "\n  "))
	}
	if len(r.Restart) > 0 {
		fmt.Fprintf(w, "Changed, but in force only after a restart:\n  %s\n", strings.Join(r.Restart, "\n  "))
	}
}

// ReloadHandler answers POST PathReload with the JSON of reload(): 200
// when the file was taken, 422 when it was refused.
func ReloadHandler(reload func() ReloadResult) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := reload()
		code := http.StatusOK
		if !res.OK() {
			code = http.StatusUnprocessableEntity
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	})
}

// Reload asks the program whose data dir is dir to reload its config
// file, and returns what it did.
func Reload(ctx context.Context, dir string) (ReloadResult, error) {
	var res ReloadResult
	code, body, err := Call(ctx, dir, http.MethodPost, PathReload)
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(body, &res); err != nil || (code != http.StatusOK && code != http.StatusUnprocessableEntity) {
		return res, fmt.Errorf("reload: unexpected answer %d: %s", code, strings.TrimSpace(string(body)))
	}
	return res, nil
}
