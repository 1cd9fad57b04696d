package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// startedAtFile, in a container's files directory, holds when its task
// was started (RFC 3339). The runtime keeps the times of the containers it
// started in memory and writes this file for an agent that restarts: a
// local file instead of a container label, so that a start does not wait
// for containerd's metadata write (a synced database update).
const startedAtFile = "started-at"

// recordStart records that container id's task was started at.
func (r *Runtime) recordStart(id string, at time.Time) {
	at = at.UTC()
	r.starts.Store(id, at)
	p := filepath.Join(r.filesDir(id), startedAtFile)
	if err := os.WriteFile(p, []byte(at.Format(time.RFC3339Nano)+"\n"), 0o640); err != nil {
		r.log.Warn("record start time", "container", id, "err", err)
	}
}

// startedAt is when container id's task was started: the time recorded
// in memory, else in its file, else in label (its value of LabelStartedAt,
// set by an agent before the file); zero when none says.
func (r *Runtime) startedAt(id, label string) time.Time {
	if v, ok := r.starts.Load(id); ok {
		return v.(time.Time)
	}
	if id != "" && validID(id) == nil {
		if b, err := os.ReadFile(filepath.Join(r.filesDir(id), startedAtFile)); err == nil {
			if ts, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err == nil {
				r.starts.Store(id, ts)
				return ts
			}
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, label); err == nil {
		return ts
	}
	return time.Time{}
}
