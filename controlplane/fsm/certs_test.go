package fsm_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const (
	putCertT    = statev1.CommandType_COMMAND_TYPE_PUT_CERT
	removeCertT = statev1.CommandType_COMMAND_TYPE_REMOVE_CERT
	certStatusT = statev1.CommandType_COMMAND_TYPE_CERT_STATUS
)

func manualCert(name string, hosts ...string) *statev1.PutCert {
	return &statev1.PutCert{Create: true, Cert: &statev1.CertRecord{
		Cert:   &ccv1.Cert{Name: name, Source: ccv1.CertSource_CERT_SOURCE_MANUAL, Hosts: hosts, ChainPem: "chain"},
		KeyPem: []byte("key"),
	}}
}

func tlsRoute(name, host, cert string) *statev1.PutRoute {
	s := upstreamSpec(host, "/", "10.0.0.1:80")
	s.Tls = &ccv1.EdgeTLSOptions{Cert: cert}
	return putRoute(name, s, true)
}

func TestCertsInUse(t *testing.T) {
	x := &svcFixture{t: t, f: newFSM(t)}
	x.must(putCertT, manualCert("site", "app.localhost", "*.apps.localhost"))
	if err := x.apply(putCertT, manualCert("site", "x.localhost")); !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("add twice: %v", err)
	}
	// A route naming a missing certificate, or one that does not cover
	// its host, is refused; wildcards cover one label.
	if err := x.apply(putRouteT, tlsRoute("web", "app.localhost", "nope")); !errors.Is(err, fsm.ErrNotFound) || !strings.Contains(err.Error(), "ccctl cert add nope") {
		t.Fatalf("missing cert: %v", err)
	}
	if err := x.apply(putRouteT, tlsRoute("web", "other.localhost", "site")); !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), "not other.localhost") {
		t.Fatalf("uncovered host: %v", err)
	}
	x.must(putRouteT, tlsRoute("web", "app.localhost", "site"))
	x.must(putRouteT, tlsRoute("api", "a.apps.localhost", "site"))
	if err := x.apply(putRouteT, tlsRoute("deep", "a.b.apps.localhost", "site")); err == nil {
		t.Fatal("a wildcard covered two labels")
	}
	// Removing a certificate in use names every user.
	err := x.apply(removeCertT, &statev1.RemoveCert{Name: "site"})
	if !errors.Is(err, fsm.ErrFailedPrecondition) || !strings.Contains(err.Error(), "route/api, route/web") {
		t.Fatalf("remove in use: %v", err)
	}
	x.must(removeRouteT, &statev1.RemoveRoute{Name: "web"})
	x.must(removeRouteT, &statev1.RemoveRoute{Name: "api"})
	x.must(removeCertT, &statev1.RemoveCert{Name: "site"})
	if _, err := x.f.Cert("site"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	// auto refuses wildcards; off with HSTS is refused.
	r := tlsRoute("wild", "*.localhost", "auto")
	if err := x.apply(putRouteT, r); !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), "wildcard") {
		t.Fatalf("auto wildcard: %v", err)
	}
	r = tlsRoute("plain", "p.localhost", "off")
	r.Route.Spec.Tls.HstsMaxAgeSeconds = 60
	if err := x.apply(putRouteT, r); !errors.Is(err, fsm.ErrInvalid) {
		t.Fatalf("hsts without tls: %v", err)
	}
	// "off" is stored as no TLS at all.
	x.must(putRouteT, tlsRoute("plain", "p.localhost", "off"))
	if got, _ := x.f.Route("plain"); got.Spec.Tls != nil {
		t.Fatalf("off stored as %v", got.Spec.Tls)
	}
}

func TestACMECertStatus(t *testing.T) {
	x := &svcFixture{t: t, f: newFSM(t)}
	x.must(putRouteT, tlsRoute("web", "app.example.com", "auto"))
	// The manager records a pending certificate, then a failure, then the
	// obtained one, which clears the error.
	x.must(certStatusT, &statev1.CertStatus{Name: "app.example.com", State: ccv1.RenewalState_RENEWAL_STATE_PENDING})
	x.must(certStatusT, &statev1.CertStatus{Name: "app.example.com", Error: "connection refused"})
	rec, _ := x.f.Cert("app.example.com")
	if rec.Cert.RenewalState != ccv1.RenewalState_RENEWAL_STATE_FAILED || rec.Cert.LastError != "connection refused" || rec.Failures != 1 {
		t.Fatalf("after failure: %v", rec)
	}
	x.must(certStatusT, &statev1.CertStatus{Name: "app.example.com", Obtained: &statev1.CertRecord{
		Cert: &ccv1.Cert{Hosts: []string{"app.example.com"}, ChainPem: "chain"}, KeyPem: []byte("k")}})
	rec, _ = x.f.Cert("app.example.com")
	if rec.Cert.RenewalState != ccv1.RenewalState_RENEWAL_STATE_VALID || rec.Cert.LastError != "" || rec.Failures != 0 || string(rec.KeyPem) != "k" || rec.Cert.Source != ccv1.CertSource_CERT_SOURCE_ACME {
		t.Fatalf("after obtained: %v", rec)
	}
	x.must(certStatusT, &statev1.CertStatus{Name: "app.example.com", RequestRenewal: true})
	if rec, _ = x.f.Cert("app.example.com"); rec.RenewRequestedAt == nil || rec.Cert.RenewalState != ccv1.RenewalState_RENEWAL_STATE_RENEWING {
		t.Fatalf("after renew request: %v", rec)
	}
	// In use by the auto route; a manual certificate cannot be renewed.
	if err := x.apply(removeCertT, &statev1.RemoveCert{Name: "app.example.com"}); !errors.Is(err, fsm.ErrFailedPrecondition) || !strings.Contains(err.Error(), "route/web") {
		t.Fatalf("remove acme in use: %v", err)
	}
	x.must(putCertT, manualCert("site", "a.localhost"))
	if err := x.apply(certStatusT, &statev1.CertStatus{Name: "site", RequestRenewal: true}); !errors.Is(err, fsm.ErrFailedPrecondition) {
		t.Fatalf("renew manual: %v", err)
	}
}

func TestACMEStorageAndLocks(t *testing.T) {
	f := newFSM(t)
	idx := uint64(0)
	at := func(d time.Duration, typ statev1.CommandType, msg proto.Message) error {
		idx++
		return apply(t, f, idx, encode(t, typ, msg, t0.Add(d)))
	}
	store := func(k string) {
		if err := at(0, statev1.CommandType_COMMAND_TYPE_ACME_STORE, &statev1.ACMEStore{Key: k, Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	store("certificates/ca/a.example.com/a.example.com.crt")
	store("certificates/ca/a.example.com/a.example.com.key")
	store("certificates/ca/b.example.com/b.example.com.crt")
	store("acme/ca/users/x/x.json")
	keys, _ := f.ACMEList("certificates/ca", false)
	if strings.Join(keys, ",") != "certificates/ca/a.example.com,certificates/ca/b.example.com" {
		t.Fatalf("list: %v", keys)
	}
	keys, _ = f.ACMEList("certificates", true)
	if len(keys) != 3 {
		t.Fatalf("recursive: %v", keys)
	}
	if err := at(0, statev1.CommandType_COMMAND_TYPE_ACME_DELETE, &statev1.ACMEDelete{Key: "certificates/ca/a.example.com"}); err != nil {
		t.Fatal(err)
	}
	if keys, _ = f.ACMEList("certificates", true); len(keys) != 1 {
		t.Fatalf("after delete: %v", keys)
	}
	lock := func(d time.Duration, holder string) error {
		return at(d, statev1.CommandType_COMMAND_TYPE_ACME_LOCK, &statev1.ACMELock{Name: "issue_cert_a", Holder: holder, ExpiresAt: timestamppb.New(t0.Add(d + time.Minute))})
	}
	if err := lock(0, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := lock(time.Second, "s2"); !errors.Is(err, fsm.ErrConflict) {
		t.Fatalf("second holder: %v", err)
	}
	if err := lock(2*time.Second, "s1"); err != nil {
		t.Fatalf("extend: %v", err)
	}
	// Expired, it passes to another holder (a new leader after a failover).
	if err := lock(2*time.Minute, "s2"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if h, _, _ := f.ACMELockHolder("issue_cert_a"); h != "s2" {
		t.Fatalf("holder %q", h)
	}
	if err := at(0, statev1.CommandType_COMMAND_TYPE_ACME_UNLOCK, &statev1.ACMEUnlock{Name: "issue_cert_a", Holder: "s1"}); !errors.Is(err, fsm.ErrConflict) {
		t.Fatalf("unlock by another: %v", err)
	}
}

func TestEdgeSettingsMerge(t *testing.T) {
	x := &svcFixture{t: t, f: newFSM(t)}
	up := func(s *ccv1.Settings) error {
		return x.apply(statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: s})
	}
	if err := up(&ccv1.Settings{Edge: &ccv1.EdgeSettings{AcmeEmail: "ops@example.com", AcmeEabKeyId: "kid", AcmeEabHmacKey: "secret", Http3: true}}); err != nil {
		t.Fatal(err)
	}
	// A strategy change keeps the edge; an edge change without the HMAC
	// keeps the stored one.
	if err := up(&ccv1.Settings{SchedulingStrategy: ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK}); err != nil {
		t.Fatal(err)
	}
	if err := up(&ccv1.Settings{Edge: &ccv1.EdgeSettings{AcmeEmail: "ops@example.com", AcmeEabKeyId: "kid"}}); err != nil {
		t.Fatal(err)
	}
	st, _ := x.f.Settings()
	if st.SchedulingStrategy != ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK || st.Edge.AcmeEabHmacKey != "secret" || st.Edge.Http3 {
		t.Fatalf("merged: %v", st)
	}
	for _, bad := range []*ccv1.EdgeSettings{
		{AcmeDirectory: "http://ca.example.com/dir"},
		{AcmeEmail: "not an address"},
		{AcmeEabKeyId: "other"},
		{DefaultCert: "missing"},
		{AcmeDisableHttp01: true, AcmeDisableTlsAlpn01: true},
	} {
		if err := up(&ccv1.Settings{Edge: bad}); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

// Certificates, keys and the ACME storage survive a snapshot and restore.
func TestCertsSurviveRestore(t *testing.T) {
	src := newFSM(t)
	mustApply(t, src, 1, initCmd(t, "c1"))
	mustApply(t, src, 2, encode(t, putCertT, manualCert("site", "a.localhost"), t0))
	mustApply(t, src, 3, encode(t, statev1.CommandType_COMMAND_TYPE_ACME_STORE, &statev1.ACMEStore{Key: "acme/ca/account.json", Value: []byte("{}")}, t0))
	snap := takeSnapshot(t, src)
	dst := newFSM(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rec, err := dst.Cert("site")
	if err != nil || string(rec.KeyPem) != "key" || rec.Cert.Hosts[0] != "a.localhost" {
		t.Fatalf("restored cert: %v %v", rec, err)
	}
	if v, err := dst.ACMELoad("acme/ca/account.json"); err != nil || string(v.Value) != "{}" {
		t.Fatalf("restored ACME storage: %v %v", v, err)
	}
}
