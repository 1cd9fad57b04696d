package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The records of HTTPS at the edge: certificates (name → CertRecord, key
// included), the ACME library's storage (key → ACMEStorageRecord) and
// locks (name → ACMELockRecord), and the pending ACME challenges every
// edge node answers (type/host/token → cc.v1.ACMEChallenge).
var (
	bucketCerts         = []byte("certs")
	bucketACMEStorage   = []byte("acme_storage")
	bucketACMELocks     = []byte("acme_locks")
	bucketACMEChallenge = []byte("acme_challenges")
)

// TLS words of a route's or site's tls.cert.
const (
	// TLSOff serves plain HTTP only (also written "").
	TLSOff = "off"
	// TLSAuto gets a certificate per host from the ACME directory.
	TLSAuto = "auto"
)

// Limits of HTTPS records.
const (
	// MaxHSTSMaxAge bounds hsts_max_age_seconds (two years).
	MaxHSTSMaxAge = 2 * 365 * 24 * 3600
	// MaxACMEValue bounds one value of the ACME storage.
	MaxACMEValue = 1 << 20
	// MaxCertPEM bounds a chain or key.
	MaxCertPEM = 1 << 20
)

// normalizeTLS checks a route's or site's TLS options: "" and "off" are
// plain HTTP (stored as nil), "auto" needs exact hosts (ACME's HTTP-01 and
// TLS-ALPN-01 cannot validate a wildcard), anything else names a
// certificate.
func normalizeTLS(t *ccv1.EdgeTLSOptions, hosts []string) (*ccv1.EdgeTLSOptions, error) {
	if t == nil {
		return nil, nil
	}
	switch t.Cert {
	case "", TLSOff:
		if t.NoRedirect || t.HstsMaxAgeSeconds != 0 || t.HstsIncludeSubdomains {
			return nil, fmt.Errorf("%w: HTTPS redirect and HSTS options need TLS: give --tls auto or --tls CERT", ErrInvalid)
		}
		return nil, nil
	case TLSAuto:
		for _, h := range hosts {
			if strings.HasPrefix(h, "*.") {
				return nil, fmt.Errorf("%w: --tls auto cannot get a certificate for %s: ACME's HTTP-01 and TLS-ALPN-01 challenges cannot validate a wildcard; add a wildcard certificate (ccctl cert add NAME --cert ... --key ...) and use --tls NAME", ErrInvalid, h)
			}
		}
	default:
		if err := ValidEdgeName("certificate", t.Cert); err != nil && ValidHost(t.Cert) != nil {
			return nil, fmt.Errorf("%w: --tls %q: give auto, off or the name of a certificate (ccctl cert ls)", ErrInvalid, t.Cert)
		}
	}
	if t.HstsMaxAgeSeconds > MaxHSTSMaxAge {
		return nil, fmt.Errorf("%w: HSTS max-age: at most %d seconds (two years)", ErrInvalid, MaxHSTSMaxAge)
	}
	if t.HstsIncludeSubdomains && t.HstsMaxAgeSeconds == 0 {
		return nil, fmt.Errorf("%w: HSTS includeSubDomains needs a max-age (e.g. --hsts 8760h)", ErrInvalid)
	}
	return proto.Clone(t).(*ccv1.EdgeTLSOptions), nil
}

// checkTLSCert refuses a route or site naming a certificate that does not
// exist or does not cover one of its hosts.
func checkTLSCert(tx *bolt.Tx, holder string, hosts []string, t *ccv1.EdgeTLSOptions) error {
	name := t.GetCert()
	if name == "" || name == TLSOff || name == TLSAuto {
		return nil
	}
	rec := &statev1.CertRecord{}
	if err := get(tx.Bucket(bucketCerts), name, rec); err == ErrNotFound {
		return fmt.Errorf("%s: certificate %s: %w (add it with ccctl cert add %s --cert chain.pem --key key.pem, or use --tls auto)", holder, name, ErrNotFound, name)
	} else if err != nil {
		return err
	}
	for _, h := range hosts {
		if !CertCovers(rec.GetCert().GetHosts(), h) {
			return fmt.Errorf("%w: %s: certificate %s covers %s, not %s: use a certificate for that host or --tls auto", ErrInvalid, holder, name, strings.Join(rec.GetCert().GetHosts(), ", "), h)
		}
	}
	return nil
}

// CertCovers reports whether a certificate for names serves host: an equal
// name, or a wildcard of one label ("*.example.com" covers
// "a.example.com"; a route's own wildcard host needs the same wildcard).
func CertCovers(names []string, host string) bool {
	for _, n := range names {
		n = strings.ToLower(n)
		if n == host {
			return true
		}
		if strings.HasPrefix(n, "*.") && !strings.HasPrefix(host, "*.") {
			if i := strings.IndexByte(host, '.'); i > 0 && host[i:] == n[1:] {
				return true
			}
		}
	}
	return false
}

// certUsers are the routes and sites ("route/NAME", "site/NAME") that name
// a certificate, or for an ACME certificate have its host with tls auto;
// and "settings/default_cert" when it is the default.
func certUsers(tx *bolt.Tx, rec *statev1.CertRecord) ([]string, error) {
	name := rec.GetCert().GetName()
	acme := rec.GetCert().GetSource() == ccv1.CertSource_CERT_SOURCE_ACME
	uses := func(t *ccv1.EdgeTLSOptions, hosts []string) bool {
		if t.GetCert() == name {
			return true
		}
		if acme && t.GetCert() == TLSAuto {
			for _, h := range hosts {
				if h == name {
					return true
				}
			}
		}
		return false
	}
	var users []string
	err := each(tx, bucketRoutes, func() *ccv1.Route { return &ccv1.Route{} }, func(r *ccv1.Route) {
		if uses(r.GetSpec().GetTls(), r.GetSpec().GetHosts()) {
			users = append(users, "route/"+r.Name)
		}
	})
	if err != nil {
		return nil, err
	}
	err = each(tx, bucketSites, func() *ccv1.Site { return &ccv1.Site{} }, func(s *ccv1.Site) {
		if uses(s.GetSpec().GetTls(), s.GetSpec().GetHosts()) {
			users = append(users, "site/"+s.Name)
		}
	})
	if err != nil {
		return nil, err
	}
	st := &ccv1.Settings{}
	if err := get(tx.Bucket(bucketCluster), string(keySettings), st); err == nil && st.GetEdge().GetDefaultCert() == name && name != "" {
		users = append(users, "settings/default_cert")
	}
	return users, nil
}

// ValidCertName checks a certificate's name: a manual one is named like a
// route (1 to 63 of a-z, 0-9 and '-'); an ACME one is its host.
func ValidCertName(name string, source ccv1.CertSource) error {
	if source == ccv1.CertSource_CERT_SOURCE_ACME {
		if err := ValidHost(name); err != nil || strings.HasPrefix(name, "*.") {
			return fmt.Errorf("%w: ACME certificate %q: named by its host", ErrInvalid, name)
		}
		return nil
	}
	return ValidEdgeName("certificate", name)
}

func applyPutCert(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.PutCert)
	rec := m.GetCert()
	c := rec.GetCert()
	if c == nil {
		return fmt.Errorf("%w: no certificate", ErrInvalid)
	}
	if err := ValidCertName(c.Name, c.Source); err != nil {
		return err
	}
	if c.ChainPem == "" || len(rec.KeyPem) == 0 || len(c.ChainPem) > MaxCertPEM || len(rec.KeyPem) > MaxCertPEM {
		return fmt.Errorf("%w: certificate %s: a chain and a key, each at most %d bytes", ErrInvalid, c.Name, MaxCertPEM)
	}
	b := tx.Bucket(bucketCerts)
	old := &statev1.CertRecord{}
	err := get(b, c.Name, old)
	switch {
	case err != nil && err != ErrNotFound:
		return err
	case err == nil && m.Create:
		return fmt.Errorf("certificate %s %w: replace it (ccctl cert add %s --replace ...) or choose another name", c.Name, ErrExists, c.Name)
	case err == nil && old.GetCert().GetSource() != c.Source:
		return fmt.Errorf("%w: certificate %s is %s; remove it first", ErrFailedPrecondition, c.Name, sourceWord(old.GetCert().GetSource()))
	}
	out := proto.Clone(rec).(*statev1.CertRecord)
	out.Cert.Version, out.Cert.CreatedAt, out.Cert.UpdatedAt = 1, ts(at), ts(at)
	if err == nil {
		out.Cert.Version, out.Cert.CreatedAt = old.GetCert().GetVersion()+1, old.GetCert().GetCreatedAt()
	}
	out.Cert.UsedBy = nil
	if out.Cert.Source == ccv1.CertSource_CERT_SOURCE_MANUAL {
		out.Cert.RenewalState = ccv1.RenewalState_RENEWAL_STATE_UNSPECIFIED
	}
	return put(b, c.Name, out)
}

func sourceWord(s ccv1.CertSource) string {
	if s == ccv1.CertSource_CERT_SOURCE_ACME {
		return "obtained by ACME"
	}
	return "added by hand"
}

func applyRemoveCert(tx *txn, _ time.Time, msg proto.Message) error {
	name := msg.(*statev1.RemoveCert).GetName()
	b := tx.Bucket(bucketCerts)
	rec := &statev1.CertRecord{}
	if err := get(b, name, rec); err == ErrNotFound {
		return fmt.Errorf("certificate %s: %w", name, ErrNotFound)
	} else if err != nil {
		return err
	}
	users, err := certUsers(tx.Tx, rec)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: certificate %s is in use by %s: change them first (e.g. ccctl route update NAME --tls off)", ErrFailedPrecondition, name, strings.Join(users, ", "))
	}
	if rec.GetCert().GetSource() == ccv1.CertSource_CERT_SOURCE_ACME {
		// The ACME library's copy goes too, so that it is not served
		// again: certificates/<issuer>/<name>/...
		var drop [][]byte
		s := tx.Bucket(bucketACMEStorage)
		c := s.Cursor()
		for k, _ := c.Seek([]byte("certificates/")); k != nil && bytes.HasPrefix(k, []byte("certificates/")); k, _ = c.Next() {
			parts := strings.Split(string(k), "/")
			if len(parts) >= 4 && parts[2] == name {
				drop = append(drop, append([]byte(nil), k...))
			}
		}
		for _, k := range drop {
			if err := s.Delete(k); err != nil {
				return err
			}
		}
	}
	return b.Delete([]byte(name))
}

func applyCertStatus(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.CertStatus)
	b := tx.Bucket(bucketCerts)
	rec := &statev1.CertRecord{}
	err := get(b, m.Name, rec)
	switch {
	case err == ErrNotFound && m.RequestRenewal:
		return fmt.Errorf("certificate %s: %w", m.Name, ErrNotFound)
	case err == ErrNotFound:
		if err := ValidCertName(m.Name, ccv1.CertSource_CERT_SOURCE_ACME); err != nil {
			return err
		}
		rec = &statev1.CertRecord{Cert: &ccv1.Cert{Name: m.Name, Source: ccv1.CertSource_CERT_SOURCE_ACME, Hosts: []string{m.Name},
			RenewalState: ccv1.RenewalState_RENEWAL_STATE_PENDING, CreatedAt: ts(at)}}
	case err != nil:
		return err
	case rec.GetCert().GetSource() != ccv1.CertSource_CERT_SOURCE_ACME:
		return fmt.Errorf("%w: certificate %s was added by hand and is not renewed by the cluster: add a new one with ccctl cert add %s --replace", ErrFailedPrecondition, m.Name, m.Name)
	}
	c := rec.Cert
	switch {
	case m.Obtained != nil:
		o := m.Obtained.GetCert()
		if o == nil || o.ChainPem == "" || len(m.Obtained.KeyPem) == 0 {
			return fmt.Errorf("%w: certificate %s: obtained without a chain or key", ErrInvalid, m.Name)
		}
		n := proto.Clone(o).(*ccv1.Cert)
		n.Name, n.Source, n.RenewalState, n.LastError, n.LastErrorAt = m.Name, ccv1.CertSource_CERT_SOURCE_ACME, ccv1.RenewalState_RENEWAL_STATE_VALID, "", nil
		n.Version, n.CreatedAt, n.UsedBy = c.Version, c.CreatedAt, nil
		rec.Cert, rec.KeyPem, rec.Failures, rec.RenewRequestedAt = n, m.Obtained.KeyPem, 0, nil
		c = n
	case m.Error != "":
		c.LastError, c.LastErrorAt = m.Error, ts(at)
		c.RenewalState = ccv1.RenewalState_RENEWAL_STATE_FAILED
		rec.Failures++
	case m.RequestRenewal:
		rec.RenewRequestedAt = ts(at)
		c.RenewalState = ccv1.RenewalState_RENEWAL_STATE_RENEWING
	case m.State != ccv1.RenewalState_RENEWAL_STATE_UNSPECIFIED:
		c.RenewalState = m.State
	}
	c.Version++
	c.UpdatedAt = ts(at)
	return put(b, m.Name, rec)
}

func applyACMEStore(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.ACMEStore)
	if m.Key == "" || len(m.Value) > MaxACMEValue {
		return fmt.Errorf("%w: ACME storage: a key and a value of at most %d bytes", ErrInvalid, MaxACMEValue)
	}
	return put(tx.Bucket(bucketACMEStorage), m.Key, &statev1.ACMEStorageRecord{Value: m.Value, ModifiedAt: ts(at)})
}

func applyACMEDelete(tx *txn, _ time.Time, msg proto.Message) error {
	key := msg.(*statev1.ACMEDelete).GetKey()
	b := tx.Bucket(bucketACMEStorage)
	var drop [][]byte
	if b.Get([]byte(key)) != nil {
		drop = append(drop, []byte(key))
	}
	prefix := []byte(strings.TrimSuffix(key, "/") + "/")
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		drop = append(drop, append([]byte(nil), k...))
	}
	if len(drop) == 0 {
		return fmt.Errorf("ACME storage key %s: %w", key, ErrNotFound)
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func applyACMELock(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.ACMELock)
	if m.Name == "" || m.Holder == "" || m.ExpiresAt == nil {
		return fmt.Errorf("%w: ACME lock: a name, a holder and an expiry", ErrInvalid)
	}
	b := tx.Bucket(bucketACMELocks)
	old := &statev1.ACMELockRecord{}
	if err := get(b, m.Name, old); err == nil && old.Holder != m.Holder && old.GetExpiresAt().AsTime().After(at) {
		return fmt.Errorf("%w: ACME lock %s is held by %s until %s", ErrConflict, m.Name, old.Holder, old.GetExpiresAt().AsTime().Format(time.RFC3339))
	} else if err != nil && err != ErrNotFound {
		return err
	}
	return put(b, m.Name, &statev1.ACMELockRecord{Holder: m.Holder, ExpiresAt: m.ExpiresAt})
}

func applyACMEUnlock(tx *txn, _ time.Time, msg proto.Message) error {
	m := msg.(*statev1.ACMEUnlock)
	b := tx.Bucket(bucketACMELocks)
	old := &statev1.ACMELockRecord{}
	if err := get(b, m.Name, old); err == ErrNotFound {
		return nil
	} else if err != nil {
		return err
	}
	if old.Holder != m.Holder {
		return fmt.Errorf("%w: ACME lock %s is held by %s, not %s", ErrConflict, m.Name, old.Holder, m.Holder)
	}
	return b.Delete([]byte(m.Name))
}

func challengeKey(typ, host, token string) string { return typ + "/" + host + "/" + token }

func applyPutChallenge(tx *txn, _ time.Time, msg proto.Message) error {
	c := msg.(*statev1.PutChallenge).GetChallenge()
	switch {
	case c == nil || c.Host == "" || c.Token == "" || strings.Contains(c.Token, "/"):
		return fmt.Errorf("%w: ACME challenge: a host and a token", ErrInvalid)
	case c.Type == "http-01" && c.KeyAuthorization == "":
		return fmt.Errorf("%w: ACME challenge http-01: no key authorization", ErrInvalid)
	case c.Type == "tls-alpn-01" && (len(c.CertPem) == 0 || len(c.KeyPem) == 0):
		return fmt.Errorf("%w: ACME challenge tls-alpn-01: no certificate", ErrInvalid)
	case c.Type != "http-01" && c.Type != "tls-alpn-01":
		return fmt.Errorf("%w: ACME challenge type %q: http-01 or tls-alpn-01", ErrInvalid, c.Type)
	}
	return put(tx.Bucket(bucketACMEChallenge), challengeKey(c.Type, c.Host, c.Token), c)
}

func applyRemoveChallenge(tx *txn, _ time.Time, msg proto.Message) error {
	m := msg.(*statev1.RemoveChallenge)
	return tx.Bucket(bucketACMEChallenge).Delete([]byte(challengeKey(m.Type, m.Host, m.Token)))
}

// normalizeEdgeSettings checks edge settings and keeps the stored EAB
// HMAC key when an update leaves it out but keeps the key id.
func normalizeEdgeSettings(tx *bolt.Tx, in, old *ccv1.EdgeSettings) (*ccv1.EdgeSettings, error) {
	e := proto.Clone(in).(*ccv1.EdgeSettings)
	e.AcmeEabHmacKeySet = false
	if d := e.AcmeDirectory; d != "" {
		u, err := url.Parse(d)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("%w: ACME directory %q: an https:// URL (e.g. https://acme-v02.api.letsencrypt.org/directory)", ErrInvalid, d)
		}
	}
	if m := e.AcmeEmail; m != "" {
		if a, err := mail.ParseAddress(m); err != nil || a.Address != m {
			return nil, fmt.Errorf("%w: ACME email %q: one address like ops@example.com", ErrInvalid, m)
		}
	}
	if e.AcmeEabHmacKey == "" && e.AcmeEabKeyId != "" && e.AcmeEabKeyId == old.GetAcmeEabKeyId() {
		e.AcmeEabHmacKey = old.GetAcmeEabHmacKey()
	}
	if (e.AcmeEabKeyId == "") != (e.AcmeEabHmacKey == "") {
		return nil, fmt.Errorf("%w: ACME external account binding: give both the key id and the HMAC key", ErrInvalid)
	}
	if e.AcmeCaRootsPem != "" && !strings.Contains(e.AcmeCaRootsPem, "-----BEGIN CERTIFICATE-----") {
		return nil, fmt.Errorf("%w: ACME CA roots: PEM certificates", ErrInvalid)
	}
	if e.AcmeDisableHttp01 && e.AcmeDisableTlsAlpn01 {
		return nil, fmt.Errorf("%w: ACME: keep at least one of the http-01 and tls-alpn-01 challenges on", ErrInvalid)
	}
	if n := e.DefaultCert; n != "" && tx.Bucket(bucketCerts).Get([]byte(n)) == nil {
		return nil, fmt.Errorf("default certificate %s: %w (add it with ccctl cert add)", n, ErrNotFound)
	}
	return e, nil
}

// Cert returns one certificate record, key included.
func (f *FSM) Cert(name string) (*statev1.CertRecord, error) {
	return one(f, bucketCerts, "certificate", name, &statev1.CertRecord{})
}

// Certs returns every certificate record, by name, keys included.
func (f *FSM) Certs() ([]*statev1.CertRecord, error) {
	return list(f, bucketCerts, func() *statev1.CertRecord { return &statev1.CertRecord{} })
}

// CertUsers are the routes and sites that use a certificate (see
// certUsers).
func (f *FSM) CertUsers(rec *statev1.CertRecord) (users []string, err error) {
	err = f.View(func(tx *bolt.Tx) error {
		users, err = certUsers(tx, rec)
		return err
	})
	return users, err
}

// Challenges returns the pending ACME challenges.
func (f *FSM) Challenges() ([]*ccv1.ACMEChallenge, error) {
	return list(f, bucketACMEChallenge, func() *ccv1.ACMEChallenge { return &ccv1.ACMEChallenge{} })
}

// ACMELoad reads a value of the ACME storage (ErrNotFound when absent).
func (f *FSM) ACMELoad(key string) (*statev1.ACMEStorageRecord, error) {
	return one(f, bucketACMEStorage, "ACME storage key", key, &statev1.ACMEStorageRecord{})
}

// ACMEList lists the keys below prefix: with recursive every key, else
// the next level only (a deeper key gives its directory once). dir reports
// whether prefix itself is a directory (has keys below it).
func (f *FSM) ACMEList(prefix string, recursive bool) (keys []string, err error) {
	p := strings.TrimSuffix(prefix, "/")
	if p != "" {
		p += "/"
	}
	seen := map[string]bool{}
	err = f.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketACMEStorage).Cursor()
		for k, _ := c.Seek([]byte(p)); k != nil && bytes.HasPrefix(k, []byte(p)); k, _ = c.Next() {
			key := string(k)
			if !recursive {
				rest := key[len(p):]
				if i := strings.IndexByte(rest, '/'); i >= 0 {
					key = p + rest[:i]
				}
			}
			if !seen[key] {
				seen[key] = true
				keys = append(keys, key)
			}
		}
		return nil
	})
	sort.Strings(keys)
	return keys, err
}

// ACMELockHolder returns who holds a lock of the ACME storage and until
// when ("" when nobody).
func (f *FSM) ACMELockHolder(name string) (string, time.Time, error) {
	rec, err := one(f, bucketACMELocks, "ACME lock", name, &statev1.ACMELockRecord{})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", time.Time{}, nil
		}
		return "", time.Time{}, err
	}
	return rec.Holder, rec.GetExpiresAt().AsTime(), nil
}
