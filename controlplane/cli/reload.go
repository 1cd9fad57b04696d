package cli

import (
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/controlplane/server"
	"github.com/containercodes/cc/internal/control"
	"github.com/containercodes/cc/internal/logging"
)

// reloader applies the config file, read again, to the running server: on
// SIGHUP and on `cc-controlplane config reload` (the control socket). The
// sections below change without a restart; any other changed key is named
// as waiting for one. A file that does not parse or validate is refused
// whole, with its problems by line, and the configuration in force stays.
type reloader struct {
	path  string
	load  func() (config.Config, error) // the file, then the flags, as at start
	srv   *server.Server
	level *slog.LevelVar
	log   *slog.Logger

	mu  sync.Mutex    // one reload at a time
	cur config.Config // in force
}

// section is a part of the configuration that a reload applies: keys are
// dotted keys, or tables for all their keys. apply runs when one of them
// changed, or at every reload when always is set (files that may have
// changed on disk under the same name).
type section struct {
	keys   []string
	always bool
	apply  func(config.Config) error
}

// sections are what reloads. Adding one is an entry here (and a setter on
// the server when it is the server's).
func (r *reloader) sections() []section {
	return []section{
		{keys: []string{"log.level"}, apply: func(c config.Config) error { return logging.SetLevel(r.level, c.Log.Level) }},
		{keys: []string{"rate_limit"}, apply: func(c config.Config) error { _, err := r.srv.SetRateLimit(c.RateLimit); return err }},
		{keys: []string{"webhooks"}, apply: func(c config.Config) error { r.srv.SetWebhookAllow(c.Webhooks); return nil }},
		{keys: []string{"join_limit"}, apply: func(c config.Config) error { r.srv.SetJoinLimit(c.JoinLimit); return nil }},
		{keys: []string{"min_free_disk"}, apply: func(c config.Config) error { r.srv.SetMinFreeDisk(c.MinFreeDisk); return nil }},
		{keys: []string{"blob_gc"}, apply: func(c config.Config) error { r.srv.SetBlobGC(c.BlobGC); return nil }},
		{keys: []string{"tracing"}, apply: func(c config.Config) error { _, err := r.srv.SetTracing(c.Tracing); return err }},
		{keys: []string{"tls_cert_file", "tls_key_file"}, always: true, apply: func(c config.Config) error {
			return r.srv.SetAPICertFiles(c.TLSCertFile, c.TLSKeyFile)
		}},
	}
}

// reloadableKeys names the keys a reload applies, for the help.
func reloadableKeys() []string {
	var out []string
	for _, s := range (&reloader{}).sections() {
		out = append(out, s.keys...)
	}
	return out
}

// reload reads the file again, applies what changed, logs it and returns
// it.
func (r *reloader) reload() control.ReloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := control.ReloadResult{File: r.path}
	if r.path == "" {
		res.Problems = []string{"no config file to reload: start cc-controlplane with --config FILE"}
		r.log.Warn("config not reloaded: no config file (start with --config FILE)")
		return res
	}
	cfg, err := r.load()
	if err != nil {
		var fe *config.FileError
		if errors.As(err, &fe) {
			for _, p := range fe.Problems {
				res.Problems = append(res.Problems, p.String())
			}
		} else {
			res.Problems = []string{err.Error()}
		}
		r.log.Error("config file refused; the configuration in force is kept", "file", r.path, "problems", strings.Join(res.Problems, "; "))
		return res
	}
	changes := config.Diff(r.cur, cfg)
	covered := make([]bool, len(changes))
	for _, sec := range r.sections() {
		var mine []string
		for i, ch := range changes {
			for _, k := range sec.keys {
				if ch.Under(k) {
					covered[i] = true
					mine = append(mine, ch.String())
				}
			}
		}
		if len(mine) == 0 && !sec.always {
			continue
		}
		if err := sec.apply(cfg); err != nil {
			// Validate checked the values; what fails here (a file that
			// changed meanwhile) keeps its old setting.
			res.Problems = append(res.Problems, strings.Join(sec.keys, ", ")+": "+err.Error())
			continue
		}
		res.Applied = append(res.Applied, mine...)
		for _, k := range sec.keys {
			config.CopyKey(&r.cur, cfg, k)
		}
	}
	for i, ch := range changes {
		if !covered[i] {
			res.Restart = append(res.Restart, ch.String())
		}
	}
	switch {
	case len(res.Problems) > 0:
		r.log.Error("config reloaded in part", "file", r.path, "applied", strings.Join(res.Applied, "; "), "problems", strings.Join(res.Problems, "; "))
	case len(res.Applied) == 0 && len(res.Restart) == 0:
		r.log.Info("config reloaded: no change", "file", r.path)
	case len(res.Applied) > 0:
		r.log.Info("config reloaded", "file", r.path, "applied", strings.Join(res.Applied, "; "))
	}
	if len(res.Restart) > 0 {
		r.log.Warn("config keys changed that take effect only after a restart", "file", r.path, "keys", strings.Join(res.Restart, "; "))
	}
	return res
}
