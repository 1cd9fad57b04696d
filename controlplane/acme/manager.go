// Package acme obtains and renews the edge's certificates from an ACME CA
// (Let's Encrypt by default) for the hosts of routes and sites with
// `tls auto`. It runs on the raft leader only. CertMagic decides when to
// obtain and renew (renewal window, ACME renewal information, retries
// with backoff) with its storage and locks kept in the cluster state
// (Storage), so that one server orders for the whole cluster and a new
// leader picks up where the last one stopped; acmez, CertMagic's ACME
// client, talks to the CA, and the challenges go to every edge node
// through the cluster state. What CertMagic stores is copied into the
// certificate records (CertStatus) that the API shows and the sessions
// send to the edge nodes.
package acme

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/certinfo"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Config is what the manager needs.
type Config struct {
	FSM *fsm.FSM
	// Propose writes a command through raft and returns its index.
	Propose func(ctx context.Context, t statev1.CommandType, payload proto.Message) (uint64, error)
	// ServerID names this server in locks.
	ServerID string
	Log      *slog.Logger
	// EdgeSynced waits until the edge nodes have the state at an index
	// (session.Hub.EdgeSynced); nil: no wait.
	EdgeSynced func(ctx context.Context, index uint64) error
	// Grace is a further wait before the CA validates a challenge, for edge
	// nodes whose sessions are on other servers (default 300ms).
	Grace time.Duration
	// RenewCheckInterval is how often renewals are considered (default:
	// CertMagic's, 10 minutes).
	RenewCheckInterval time.Duration
	// Poll is the longest wait between two looks at the state (default
	// 5s); a state change wakes the manager sooner.
	Poll time.Duration
}

// Manager is the leader's ACME loop.
type Manager struct {
	c   Config
	log *slog.Logger
}

// New returns a manager.
func New(c Config) *Manager {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Grace == 0 {
		c.Grace = 300 * time.Millisecond
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	return &Manager{c: c, log: c.Log}
}

// Run manages the certificates until ctx ends (the end of this server's
// term as leader). A change of the ACME settings starts over with them.
func (m *Manager) Run(ctx context.Context) {
	for ctx.Err() == nil {
		st, err := m.c.FSM.Settings()
		if err != nil {
			m.log.Warn("ACME: could not read the settings", "err", err)
			sleep(ctx, m.c.Poll)
			continue
		}
		if err := m.term(ctx, st.GetEdge()); err != nil && ctx.Err() == nil {
			m.log.Warn("ACME: stopped; starting again", "err", err)
			sleep(ctx, m.c.Poll)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// acmeSettings are the settings the ACME work depends on (not HTTP/3 or
// the default certificate).
func acmeSettings(e *ccv1.EdgeSettings) *ccv1.EdgeSettings {
	if e == nil {
		return &ccv1.EdgeSettings{}
	}
	return &ccv1.EdgeSettings{AcmeDirectory: e.AcmeDirectory, AcmeEmail: e.AcmeEmail, AcmeEabKeyId: e.AcmeEabKeyId,
		AcmeEabHmacKey: e.AcmeEabHmacKey, AcmeCaRootsPem: e.AcmeCaRootsPem,
		AcmeDisableHttp01: e.AcmeDisableHttp01, AcmeDisableTlsAlpn01: e.AcmeDisableTlsAlpn01}
}

// term is one run with one set of ACME settings; it returns when they
// change or ctx ends.
func (m *Manager) term(ctx context.Context, settings *ccv1.EdgeSettings) error {
	settings = acmeSettings(settings)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	storage := &Storage{FSM: m.c.FSM, Propose: m.c.Propose, Holder: m.c.ServerID + "-" + hex.EncodeToString(nonce)}
	sv := &solver{propose: m.c.Propose, synced: m.c.EdgeSynced, grace: m.c.Grace, last: map[string]uint64{}}
	iss, err := newIssuer(settings, storage, sv, m.log)
	if err != nil {
		return err
	}
	r := &run{m: m, iss: iss, storage: storage, kick: make(chan struct{}, 1), renewing: map[string]bool{}, managed: map[string]bool{}}
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		RenewCheckInterval: m.c.RenewCheckInterval,
		Logger:             zap.NewNop(),
	})
	defer cache.Stop()
	cfg = certmagic.New(cache, certmagic.Config{
		Storage: storage,
		Issuers: []certmagic.Issuer{iss},
		OnEvent: r.onEvent,
		Logger:  zap.NewNop(),
		// The edge nodes staple OCSP themselves.
		OCSP: certmagic.OCSPConfig{DisableStapling: true},
	})
	r.cfg = cfg
	m.log.Info("ACME: managing certificates", "directory", iss.directory())
	// Challenges left in the state belong to orders of an earlier term
	// (a deposed or dead leader's): nobody waits on them any more.
	if stale, err := m.c.FSM.Challenges(); err == nil {
		for _, c := range stale {
			_, _ = m.c.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_CHALLENGE, &statev1.RemoveChallenge{Type: c.Type, Host: c.Host, Token: c.Token})
		}
	}
	for {
		watch := m.c.FSM.Watch()
		cur, err := m.c.FSM.Settings()
		if err == nil && !proto.Equal(acmeSettings(cur.GetEdge()), settings) {
			m.log.Info("ACME: settings changed")
			return nil
		}
		if err := r.pass(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("ACME: pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-watch:
			// Let a burst of writes (its own included) settle.
			sleep(ctx, 100*time.Millisecond)
		case <-r.kick:
		case <-time.After(m.c.Poll):
		}
	}
}

// run is the state of one term.
type run struct {
	m       *Manager
	cfg     *certmagic.Config
	iss     *issuer
	storage *Storage
	kick    chan struct{}

	mu       sync.Mutex
	managed  map[string]bool
	renewing map[string]bool
}

// Wanted are the hosts of routes and sites with tls auto, sorted.
func Wanted(routes []*ccv1.Route, sites []*ccv1.Site) []string {
	seen := map[string]bool{}
	add := func(t *ccv1.EdgeTLSOptions, hosts []string) {
		if t.GetCert() != fsm.TLSAuto {
			return
		}
		for _, h := range hosts {
			seen[h] = true
		}
	}
	for _, r := range routes {
		add(r.GetSpec().GetTls(), r.GetSpec().GetHosts())
	}
	for _, s := range sites {
		add(s.GetSpec().GetTls(), s.GetSpec().GetHosts())
	}
	out := make([]string, 0, len(seen))
	for h := range seen {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// pass brings the certificates in line with the state: a record for
// every wanted host, CertMagic managing it, renewals asked for started,
// and what CertMagic stored copied into the records.
func (r *run) pass(ctx context.Context) error {
	f := r.m.c.FSM
	routes, err := f.Routes()
	if err != nil {
		return err
	}
	sites, err := f.Sites()
	if err != nil {
		return err
	}
	recs, err := f.Certs()
	if err != nil {
		return err
	}
	byName := map[string]*statev1.CertRecord{}
	for _, rec := range recs {
		byName[rec.GetCert().GetName()] = rec
	}
	var fresh []string
	for _, host := range Wanted(routes, sites) {
		rec := byName[host]
		if rec != nil && rec.GetCert().GetSource() != ccv1.CertSource_CERT_SOURCE_ACME {
			continue // a manual certificate of that name: leave it
		}
		if rec == nil {
			if _, err := r.m.c.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CERT_STATUS, &statev1.CertStatus{Name: host, State: ccv1.RenewalState_RENEWAL_STATE_PENDING}); err != nil {
				return fmt.Errorf("record certificate %s: %w", host, err)
			}
		}
		r.mu.Lock()
		if !r.managed[host] {
			r.managed[host] = true
			fresh = append(fresh, host)
		}
		r.mu.Unlock()
	}
	if len(fresh) > 0 {
		r.m.log.Info("ACME: managing", "hosts", fresh)
		if err := r.cfg.ManageAsync(ctx, fresh); err != nil {
			return fmt.Errorf("manage %v: %w", fresh, err)
		}
	}
	for _, rec := range recs {
		name := rec.GetCert().GetName()
		if rec.GetCert().GetSource() != ccv1.CertSource_CERT_SOURCE_ACME {
			continue
		}
		r.mu.Lock()
		managed, busy := r.managed[name], r.renewing[name]
		r.mu.Unlock()
		if !managed {
			continue
		}
		changed, err := r.record(ctx, rec)
		if err != nil {
			r.m.log.Warn("ACME: could not record a certificate", "cert", name, "err", err)
		}
		// A certificate just recorded answers a renewal asked for before
		// it (rec was read before): the record clears the request.
		if rec.RenewRequestedAt != nil && !busy && !changed && rec.GetCert().GetChainPem() != "" {
			r.renew(ctx, name)
		}
	}
	return nil
}

// renew renews a certificate now, in the background (`ccctl cert renew`).
func (r *run) renew(ctx context.Context, name string) {
	r.mu.Lock()
	r.renewing[name] = true
	r.mu.Unlock()
	r.m.log.Info("ACME: renewing on request", "cert", name)
	go func() {
		defer func() {
			r.mu.Lock()
			delete(r.renewing, name)
			r.mu.Unlock()
		}()
		if err := r.cfg.RenewCertSync(ctx, name, true); err != nil && ctx.Err() == nil {
			r.m.log.Warn("ACME: renewal failed", "cert", name, "err", err)
			_, _ = r.m.c.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CERT_STATUS, &statev1.CertStatus{Name: name, Error: err.Error()})
		}
		r.poke()
	}()
}

func (r *run) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// record copies the certificate CertMagic stored for a name into its
// record when it differs (a new one, or one a deposed leader stored but
// had not recorded).
func (r *run) record(ctx context.Context, rec *statev1.CertRecord) (changed bool, err error) {
	name := rec.GetCert().GetName()
	key := r.iss.IssuerKey()
	chain, err := r.storage.Load(ctx, certmagic.StorageKeys.SiteCert(key, name))
	if err != nil {
		return false, nil // not obtained yet
	}
	keyPEM, err := r.storage.Load(ctx, certmagic.StorageKeys.SitePrivateKey(key, name))
	if err != nil {
		return false, nil
	}
	ch, err := certinfo.ParseChain(chain)
	if err != nil {
		return false, err
	}
	c := certinfo.Describe(ch)
	if c.Sha256 == rec.GetCert().GetSha256() {
		return false, nil
	}
	leaf := ch.Leaf()
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	c.RenewAfter = timestampOf(leaf.NotAfter.Add(-time.Duration(float64(life) * r.cfg.RenewalWindowRatio)))
	if _, err := r.m.c.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CERT_STATUS, &statev1.CertStatus{Name: name,
		Obtained: &statev1.CertRecord{Cert: c, KeyPem: keyPEM}}); err != nil {
		return false, err
	}
	r.m.log.Info("ACME: certificate recorded", "cert", name, "not_after", leaf.NotAfter, "issuer", c.Issuer, "sha256", c.Sha256)
	return true, nil
}

// onEvent follows CertMagic: failures go into the record (and the log),
// an obtained certificate wakes the pass that records it.
func (r *run) onEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining":
		if renewal, _ := data["renewal"].(bool); renewal && name != "" {
			_, _ = r.m.c.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CERT_STATUS, &statev1.CertStatus{Name: name, State: ccv1.RenewalState_RENEWAL_STATE_RENEWING})
		}
	case "cert_obtained":
		r.poke()
	case "cert_failed":
		msg := "unknown error"
		if err, ok := data["error"].(error); ok {
			msg = err.Error()
		}
		r.m.log.Warn("ACME: could not get a certificate; retrying with backoff", "cert", name, "err", msg)
		if name != "" {
			if _, err := r.m.c.Propose(context.WithoutCancel(ctx), statev1.CommandType_COMMAND_TYPE_CERT_STATUS, &statev1.CertStatus{Name: name, Error: msg}); err != nil && !errors.Is(err, context.Canceled) {
				r.m.log.Debug("ACME: could not record the failure", "cert", name, "err", err)
			}
		}
	}
	return nil
}
