package server

import (
	"net/netip"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/controlplane/webhook"
)

// What a reload of the config file changes while the server runs (see
// controlplane/cli, which decides which keys reload; the others wait for
// a restart). SetRateLimit is in ratelimit.go.

// SetWebhookAllow applies webhooks.allow: to the checks at submit and at
// every delivery from now on.
func (s *Server) SetWebhookAllow(c config.WebhooksConfig) {
	allow := c.AllowPrefixes()
	s.webhookAllow.Store(&allow)
}

// webhookPolicy is the policy of this server's webhooks, which reads the
// allow-list in force at each check.
func (s *Server) webhookPolicy() webhook.Policy {
	return webhook.Policy{AllowFunc: func() []netip.Prefix {
		if p := s.webhookAllow.Load(); p != nil {
			return *p
		}
		return nil
	}}
}

// SetJoinLimit applies join_limit; the buckets keep what they hold.
func (s *Server) SetJoinLimit(c config.JoinLimitConfig) {
	if s.joins != nil {
		s.joins.SetRule(c.PerMinute, c.Burst)
	}
}

// SetMinFreeDisk applies min_free_disk; the next check measures again.
func (s *Server) SetMinFreeDisk(d config.DiskFloor) {
	s.disk.Set(d.Bytes, d.Percent)
}

// SetBlobGC applies blob_gc: the collector's interval at once, its grace
// at the next pass.
func (s *Server) SetBlobGC(c config.BlobGCConfig) {
	s.gc.Set(c.Interval.Duration, c.Grace.Duration)
}

// SetAPICertFiles applies tls_cert_file and tls_key_file, and reads the
// files again when they changed on disk since they were last read; a pair
// that does not load is an error, and the certificate in use is kept.
func (s *Server) SetAPICertFiles(certFile, keyFile string) error {
	if s.certs == nil {
		return nil
	}
	if err := s.certs.setFiles(certFile, keyFile); err != nil {
		return err
	}
	s.certs.reloadIfChanged()
	return nil
}
