package server

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protojson"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// auditSink is this server's local audit trail: the audit_file (JSON lines
// for a SIEM) gets every audit record the state machine applies here and
// every call the server refused before raft; refusals are also counted
// and logged.
type auditSink struct {
	log    *slog.Logger
	server string

	mu   sync.Mutex
	file *os.File // nil: no audit_file

	refused atomic.Uint64
}

func openAuditSink(path, serverID string, log *slog.Logger) (*auditSink, error) {
	a := &auditSink{log: log, server: serverID}
	if path == "" {
		return a, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit_file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit_file: %w", err)
	}
	a.file = f
	return a, nil
}

var auditJSON = protojson.MarshalOptions{UseProtoNames: true}

// write appends events to the audit file, one JSON object a line.
func (a *auditSink) write(evs []*ccv1.AuditEvent) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.file == nil {
		return
	}
	var buf []byte
	for _, ev := range evs {
		line, err := auditJSON.Marshal(ev)
		if err != nil {
			a.log.Error("audit: encode event", "err", err)
			continue
		}
		buf = append(append(buf, line...), '\n')
	}
	if _, err := a.file.Write(buf); err != nil {
		a.log.Error("audit: write audit_file", "err", err)
	}
}

// applied is the state machine's OnAudit hook.
func (a *auditSink) applied(evs []*ccv1.AuditEvent) { a.write(evs) }

// refusal records a call refused before raft: counted, logged and written
// to the audit file.
func (a *auditSink) refusal(ev *ccv1.AuditEvent) {
	n := a.refused.Add(1)
	ev.Server = a.server
	a.log.Warn("audit: call refused", "method", ev.Method, "source", ev.Source, "outcome", ev.Outcome,
		"token_id", ev.TokenId, "reason", ev.Error, "refused_total", n)
	a.write([]*ccv1.AuditEvent{ev})
}

// Refused counts the calls this server refused before raft (bad
// credentials, wrong roles, refused joins) since it started.
func (s *Server) Refused() uint64 {
	if s.audit == nil {
		return 0
	}
	return s.audit.refused.Load()
}

func (a *auditSink) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.file == nil {
		return nil
	}
	err := a.file.Close()
	a.file = nil
	return err
}
