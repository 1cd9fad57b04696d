package cli

import (
	"log/slog"
	"strings"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/controlplane/server"
)

// reloadTracing applies the [tracing] section of a reloaded config file
// and logs what changed; a wrong section is refused and the tracing in
// force stays.
func reloadTracing(path string, c config.TracingConfig, srv *server.Server, log *slog.Logger) {
	changes, err := srv.SetTracing(c)
	switch {
	case err != nil:
		log.Error("SIGHUP: tracing not reloaded; the settings in force are kept", "file", path, "err", err)
	case len(changes) == 0:
		log.Info("SIGHUP: tracing reloaded: no change", "file", path)
	default:
		log.Info("SIGHUP: tracing reloaded", "file", path, "changed", strings.Join(changes, ", "))
	}
}
