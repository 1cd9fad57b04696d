package ctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// fakeCerts is what the fake CertService holds and recorded.
type fakeCerts struct {
	certs   []*ccv1.Cert // ListCerts and GetCert
	add     *ccv1.AddCertRequest
	renewed []string
	removed []string
}

func (f *fakeAPI) AddCert(_ context.Context, r *ccv1.AddCertRequest) (*ccv1.AddCertResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.certs.add = r
	if r.Name == "taken" && !r.Replace {
		return nil, status.Error(codes.AlreadyExists, "certificate taken already exists: add --replace to replace it")
	}
	return &ccv1.AddCertResponse{Cert: &ccv1.Cert{Name: r.Name, Source: ccv1.CertSource_CERT_SOURCE_MANUAL, Hosts: []string{"example.com", "www.example.com"},
		Issuer: "Test CA", KeyType: "ECDSA P-256", NotAfter: timestamppb.New(time.Now().Add(90*24*time.Hour + time.Hour))}}, nil
}

func (f *fakeAPI) ListCerts(context.Context, *ccv1.ListCertsRequest) (*ccv1.ListCertsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &ccv1.ListCertsResponse{Certs: f.certs.certs}, nil
}

func (f *fakeAPI) GetCert(_ context.Context, r *ccv1.GetCertRequest) (*ccv1.GetCertResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.certs.certs {
		if x.Name == r.Name {
			return &ccv1.GetCertResponse{Cert: x}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "certificate %s: not found", r.Name)
}

func (f *fakeAPI) RenewCert(_ context.Context, r *ccv1.RenewCertRequest) (*ccv1.RenewCertResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.certs.renewed = append(f.certs.renewed, r.Name)
	if r.Name == "manual" {
		return nil, status.Error(codes.FailedPrecondition, "certificate manual is manual: replace it with ccctl cert add --replace")
	}
	return &ccv1.RenewCertResponse{Cert: &ccv1.Cert{Name: r.Name, Source: ccv1.CertSource_CERT_SOURCE_ACME, RenewalState: ccv1.RenewalState_RENEWAL_STATE_RENEWING}}, nil
}

func (f *fakeAPI) RemoveCert(_ context.Context, r *ccv1.RemoveCertRequest) (*ccv1.RemoveCertResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.certs.removed = append(f.certs.removed, r.Name)
	if r.Name == "used" {
		return nil, status.Error(codes.FailedPrecondition, "certificate used is used by route/web")
	}
	return &ccv1.RemoveCertResponse{}, nil
}

// testPEM makes a PEM certificate for host, signed by parent (self-signed
// when nil), and its PEM key.
func testPEM(t *testing.T, host string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: isCA, BasicConstraintsValid: true}
	if !isCA {
		tmpl.DNSNames = []string{host}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), cert, key
}

// cells splits a table into rows of cells: columns are two spaces or more
// apart.
func cells(table string) [][]string {
	var out [][]string
	for _, l := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		out = append(out, regexp.MustCompile(`  +`).Split(strings.TrimSpace(l), -1))
	}
	return out
}

// keyValues reads "Key:   value" lines.
func keyValues(s string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func writeFile(t *testing.T, dir, name string, data ...[]byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(func() []string {
		var s []string
		for _, d := range data {
			s = append(s, string(d))
		}
		return s
	}(), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCertAddSendsTheFiles(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	dir := t.TempDir()
	caPEM, _, ca, caKey := testPEM(t, "Test CA", true, nil, nil)
	leafPEM, keyPEM, _, _ := testPEM(t, "example.com", false, ca, caKey)
	chain := writeFile(t, dir, "fullchain.pem", []byte("Bag Attributes: junk\n"), leafPEM, caPEM)
	key := writeFile(t, dir, "privkey.pem", keyPEM)

	r := runCtl(conn, "cert", "add", "example-com", "--cert", chain, "--key", key)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Added certificate example-com\n") || !strings.Contains(r.stdout, "example.com, www.example.com") ||
		!strings.Contains(r.stdout, "(in 90d)") || !strings.Contains(r.stdout, "ccctl route update ROUTE --tls example-com") {
		t.Fatalf("cert add: %+v", r)
	}
	want := &ccv1.AddCertRequest{Name: "example-com", ChainPem: string(leafPEM) + string(caPEM), KeyPem: string(keyPEM)}
	f.locked(func() {
		if !proto.Equal(f.certs.add, want) {
			t.Errorf("AddCert got %v, want %v", f.certs.add, want)
		}
	})

	// One file with both; --replace; -o json.
	combined := writeFile(t, dir, "combined.pem", leafPEM, caPEM, keyPEM)
	r = runCtl(conn, "cert", "add", "taken", "--cert", combined, "--replace", "-o", "json")
	var got struct{ Name, Source string }
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.Name != "taken" || got.Source != "CERT_SOURCE_MANUAL" {
		t.Fatalf("cert add --replace -o json: %+v (%v)", r, err)
	}
	want = &ccv1.AddCertRequest{Name: "taken", ChainPem: string(leafPEM) + string(caPEM), KeyPem: string(keyPEM), Replace: true}
	f.locked(func() {
		if !proto.Equal(f.certs.add, want) {
			t.Errorf("AddCert got %v, want %v", f.certs.add, want)
		}
	})
	// The server's refusal is one line.
	if r := runCtl(conn, "cert", "add", "taken", "--cert", chain, "--key", key); r.code != 1 || r.stderr != "ccctl: certificate taken already exists: add --replace to replace it\n" {
		t.Errorf("cert add of a taken name: %+v", r)
	}
}

func TestCertAddChecksTheFiles(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	dir := t.TempDir()
	caPEM, _, ca, caKey := testPEM(t, "Test CA", true, nil, nil)
	leafPEM, keyPEM, _, _ := testPEM(t, "example.com", false, ca, caKey)
	chain := writeFile(t, dir, "chain.pem", leafPEM, caPEM)
	key := writeFile(t, dir, "key.pem", keyPEM)
	combined := writeFile(t, dir, "combined.pem", leafPEM, keyPEM)
	backwards := writeFile(t, dir, "backwards.pem", caPEM, leafPEM)
	encrypted := writeFile(t, dir, "enc.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}))
	der := writeFile(t, dir, "cert.der", []byte{0x30, 0x82, 1, 2})
	missing := filepath.Join(dir, "nope.pem")
	cases := map[string][]string{
		"ccctl: --cert " + key + " holds a private key and no certificate: are --cert and --key swapped?":         {"--cert", key, "--key", chain},
		"ccctl: --cert " + der + " holds no PEM certificate":                                                      {"--cert", der, "--key", key},
		"ccctl: --key " + chain + " holds a certificate and no private key: are --cert and --key swapped?":        {"--cert", chain, "--key", chain},
		"ccctl: --cert " + missing + ": no such file or directory":                                                {"--cert", missing, "--key", key},
		"ccctl: --key " + missing + ": no such file or directory":                                                 {"--cert", chain, "--key", missing},
		"ccctl: --cert " + chain + " holds no private key: give it with --key KEY.pem":                            {"--cert", chain},
		"ccctl: --cert " + combined + " holds a private key too":                                                  {"--cert", combined, "--key", key},
		"ccctl: --cert: the chain must start with the leaf (example.com), then its intermediates":                 {"--cert", backwards, "--key", key},
		"ccctl: the private key in " + encrypted + " is encrypted: decrypt it first":                              {"--cert", chain, "--key", encrypted},
		"ccctl: Required flag \"cert\" not set":                                                                   {"--key", key},
		"ccctl: cert add needs one NAME (e.g. ccctl cert add example-com --cert fullchain.pem --key privkey.pem)": {"--cert", chain, "--key", key, "x", "y"},
	}
	for want, args := range cases {
		name := []string{"cert", "add", "x"}
		if strings.Contains(want, "needs one NAME") {
			name = name[:2]
		}
		r := runCtl(conn, append(name, args...)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: %+v\nwant %q", args, r, want)
		}
	}
	f.locked(func() {
		if f.certs.add != nil {
			t.Errorf("AddCert was called: %v", f.certs.add)
		}
	})
}

func testCerts(now time.Time) []*ccv1.Cert {
	return []*ccv1.Cert{
		{Name: "shop.example.com", Source: ccv1.CertSource_CERT_SOURCE_ACME, Hosts: []string{"shop.example.com"}, Issuer: "R11",
			NotAfter: timestamppb.New(now.Add(89*24*time.Hour + time.Hour)), RenewalState: ccv1.RenewalState_RENEWAL_STATE_VALID,
			RenewAfter: timestamppb.New(now.Add(59 * 24 * time.Hour)), UsedBy: []string{"route/shop"}},
		{Name: "broken", Source: ccv1.CertSource_CERT_SOURCE_ACME, Hosts: []string{"a.example.com"}, Issuer: "R11",
			NotAfter: timestamppb.New(now.Add(-2*24*time.Hour - time.Hour)), RenewalState: ccv1.RenewalState_RENEWAL_STATE_FAILED,
			LastError: "acme: urn:ietf:params:acme:error:dns: no valid A records found for a.example.com", LastErrorAt: timestamppb.New(now.Add(-time.Hour))},
		{Name: "example-com", Source: ccv1.CertSource_CERT_SOURCE_MANUAL,
			Hosts:  []string{"example.com", "www.example.com", "api.example.com", "static.example.com", "cdn.example.com"},
			Issuer: "Example Corporation Intermediate Certificate Authority G7", NotAfter: timestamppb.New(now.Add(300*24*time.Hour + time.Hour)),
			UsedBy: []string{"route/web", "site/docs"}, KeyType: "ECDSA P-256", Serial: "0a1b", Sha256: "ff00", Version: 3,
			ChainPem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
		{Name: "pending", Source: ccv1.CertSource_CERT_SOURCE_ACME, Hosts: []string{"new.example.com"}, RenewalState: ccv1.RenewalState_RENEWAL_STATE_PENDING},
	}
}

func TestCertList(t *testing.T) {
	now := time.Now()
	f := &fakeAPI{}
	f.certs.certs = testCerts(now)
	conn := startFake(t, f)
	r := runCtl(conn, "cert", "ls")
	day := func(d time.Duration) string { return now.Add(d).Local().Format(time.DateOnly) }
	want := [][]string{
		{"NAME", "SOURCE", "HOSTS", "ISSUER", "NOT AFTER", "RENEWAL", "USED BY"},
		{"shop.example.com", "acme", "shop.example.com", "R11", day(89*24*time.Hour+time.Hour) + " (in 89d)", "valid", "route/shop"},
		{"broken", "acme", "a.example.com", "R11", day(-2*24*time.Hour-time.Hour) + " (expired 2d ago)", "failed: acme: urn:ietf:params:acme:error:dns: n…", "-"},
		{"example-com", "manual", "example.com,www.example.com +3", "Example Corporation Intermedi…", day(300*24*time.Hour+time.Hour) + " (in 300d)", "-", "route/web,site/docs"},
		{"pending", "acme", "new.example.com", "-", "-", "pending", "-"},
	}
	if got := cells(r.stdout); r.code != 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("cert ls: %+v\ngot  %q\nwant %q", r, got, want)
	}
	if r := runCtl(conn, "cert", "ls", "-q"); r.stdout != "shop.example.com\nbroken\nexample-com\npending\n" {
		t.Errorf("cert ls -q: %+v", r)
	}
	r = runCtl(conn, "cert", "ls", "-o", "json")
	var got struct {
		Certs []struct {
			Name   string   `json:"name"`
			UsedBy []string `json:"used_by"`
		} `json:"certs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || len(got.Certs) != 4 || got.Certs[2].UsedBy[1] != "site/docs" {
		t.Errorf("cert ls -o json: %+v (%v)", r, err)
	}
}

func TestCertInspect(t *testing.T) {
	f := &fakeAPI{}
	f.certs.certs = testCerts(time.Now())
	conn := startFake(t, f)
	r := runCtl(conn, "cert", "inspect", "example-com")
	got := keyValues(r.stdout)
	for k, want := range map[string]string{"Name": "example-com", "Source": "manual", "Hosts": "example.com, www.example.com, api.example.com, static.example.com, cdn.example.com",
		"Key type": "ECDSA P-256", "Serial": "0a1b", "SHA-256": "ff00", "Used by": "route/web, site/docs", "Subject": "-",
		"Renewal": "not renewed (manual: replace it with ccctl cert add NAME --replace)", "Version": "3", "Chain": "1 certificate: ? (print it with --pem)"} {
		if got[k] != want {
			t.Errorf("cert inspect %s: %q, want %q", k, got[k], want)
		}
	}
	if !strings.HasSuffix(got["Not after"], " (in 300d)") {
		t.Errorf("cert inspect Not after: %q", got["Not after"])
	}
	if r.code != 0 || strings.Contains(r.stdout, "BEGIN CERTIFICATE") || strings.Contains(r.stdout, "Renew after") {
		t.Errorf("cert inspect: %+v", r)
	}
	if r := runCtl(conn, "cert", "inspect", "example-com", "--pem"); r.code != 0 || r.stdout != f.certs.certs[2].ChainPem {
		t.Errorf("cert inspect --pem: %+v", r)
	}
	r = runCtl(conn, "cert", "inspect", "broken")
	got = keyValues(r.stdout)
	for k, want := range map[string]string{"Renewal": "failed", "Renew after": "-", "Chain": "-",
		"Last error": "acme: urn:ietf:params:acme:error:dns: no valid A records found for a.example.com"} {
		if got[k] != want {
			t.Errorf("cert inspect broken %s: %q, want %q", k, got[k], want)
		}
	}
	if !strings.HasSuffix(got["Last error at"], " (About an hour ago)") {
		t.Errorf("cert inspect broken: Last error at %q", got["Last error at"])
	}
	r = runCtl(conn, "cert", "inspect", "example-com", "-o", "json")
	var js struct {
		Name     string `json:"name"`
		ChainPEM string `json:"chain_pem"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &js); r.code != 0 || err != nil || js.Name != "example-com" || js.ChainPEM == "" {
		t.Errorf("cert inspect -o json: %+v (%v)", r, err)
	}
	if r := runCtl(conn, "cert", "inspect", "pending", "--pem"); r.code != 1 || r.stderr != "ccctl: certificate pending has no chain yet (renewal: pending)\n" {
		t.Errorf("cert inspect --pem of a pending one: %+v", r)
	}
	if r := runCtl(conn, "cert", "inspect", "nope"); r.code != 1 || r.stderr != "ccctl: certificate nope: not found\n" {
		t.Errorf("cert inspect nope: %+v", r)
	}
}

func TestCertRemoveAndRenewReportEach(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "cert", "rm", "a", "used", "b")
	if r.code != 1 || r.stdout != "a\nb\n" || r.stderr != "ccctl: cert rm used: failed precondition: certificate used is used by route/web\n" {
		t.Errorf("cert rm a used b: %+v", r)
	}
	if r := runCtl(conn, "cert", "rm", "a"); r.code != 0 || r.stdout != "a\n" {
		t.Errorf("cert rm a: %+v", r)
	}
	r = runCtl(conn, "cert", "renew", "new.example.com", "manual")
	if r.code != 1 || r.stdout != "new.example.com: renewing (see ccctl cert ls)\n" || !strings.HasPrefix(r.stderr, "ccctl: cert renew manual: failed precondition: certificate manual is manual") {
		t.Errorf("cert renew: %+v", r)
	}
	f.locked(func() {
		if strings.Join(f.certs.removed, " ") != "a used b a" || strings.Join(f.certs.renewed, " ") != "new.example.com manual" {
			t.Errorf("removed %v, renewed %v", f.certs.removed, f.certs.renewed)
		}
	})
	if r := runCtl(conn, "cert", "rm"); r.code != 1 || !strings.Contains(r.stderr, "cert rm needs at least one argument") {
		t.Errorf("cert rm without names: %+v", r)
	}
}

func TestClusterSettingsEdge(t *testing.T) {
	f := &fakeAPI{settings: &ccv1.Settings{SchedulingStrategy: ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK, Edge: &ccv1.EdgeSettings{
		AcmeDirectory: "https://ca.internal/directory", AcmeEmail: "old@example.com", AcmeEabKeyId: "kid-1", AcmeEabHmacKey: "c2VjcmV0",
		AcmeCaRootsPem: "roots", Http3: true, DefaultCert: "example-com",
	}}}
	conn := startFake(t, f)
	r := runCtl(conn, "cluster", "settings")
	for _, want := range []string{"Scheduling strategy:  binpack\n", "HTTP/3:               on\n", "Default certificate:  example-com\n",
		"ACME directory:       https://ca.internal/directory\n", "ACME email:           old@example.com\n", "ACME EAB key id:      kid-1\n",
		"ACME EAB HMAC key:    set\n", "ACME challenges:      http-01, tls-alpn-01\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cluster settings lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 0 || strings.Contains(r.stdout, "c2VjcmV0") {
		t.Errorf("cluster settings: %+v", r)
	}

	// Two flags change two settings; the rest is sent as it was, the
	// HMAC key empty (kept) and the strategy unspecified (kept).
	r = runCtl(conn, "cluster", "settings", "--acme-email", "ops@example.com", "--acme-challenges", "tls-alpn-01")
	if r.code != 0 || !strings.Contains(r.stdout, "ACME challenges:      tls-alpn-01\n") || !strings.Contains(r.stdout, "ACME EAB HMAC key:    set\n") {
		t.Fatalf("cluster settings --acme-email: %+v", r)
	}
	want := &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Edge: &ccv1.EdgeSettings{
		AcmeDirectory: "https://ca.internal/directory", AcmeEmail: "ops@example.com", AcmeEabKeyId: "kid-1",
		AcmeCaRootsPem: "roots", Http3: true, DefaultCert: "example-com", AcmeDisableHttp01: true,
	}}}
	f.locked(func() {
		if got := f.settingsReqs[len(f.settingsReqs)-1]; !proto.Equal(got, want) {
			t.Errorf("UpdateSettings got\n%v\nwant\n%v", got, want)
		}
		if f.settings.SchedulingStrategy != ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK || f.settings.Edge.AcmeEabHmacKey != "c2VjcmV0" {
			t.Errorf("settings now %v; want binpack and the HMAC key kept", f.settings)
		}
	})

	// Every flag; a new key id with its HMAC key from a file, the roots
	// from a file.
	dir := t.TempDir()
	caPEM, _, _, _ := testPEM(t, "Private CA", true, nil, nil)
	roots := writeFile(t, dir, "roots.pem", caPEM)
	hmacFile := writeFile(t, dir, "hmac.txt", []byte("bmV3LWtleQ\n"))
	r = runCtl(conn, "cluster", "settings", "--scheduling-strategy", "spread", "--acme-directory", "letsencrypt", "--acme-eab-kid", "kid-2",
		"--acme-eab-hmac-file", hmacFile, "--acme-ca-roots", roots, "--edge-http3", "false", "--edge-default-cert", "",
		"--acme-challenges", "http-01,tls-alpn-01", "-o", "json")
	if r.code != 0 || strings.Contains(r.stdout, "bmV3LWtleQ") {
		t.Fatalf("cluster settings, every flag: %+v", r)
	}
	want = &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{SchedulingStrategy: ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD, Edge: &ccv1.EdgeSettings{
		AcmeEmail: "ops@example.com", AcmeEabKeyId: "kid-2", AcmeEabHmacKey: "bmV3LWtleQ", AcmeCaRootsPem: string(caPEM),
	}}}
	f.locked(func() {
		if got := f.settingsReqs[len(f.settingsReqs)-1]; !proto.Equal(got, want) {
			t.Errorf("UpdateSettings got\n%v\nwant\n%v", got, want)
		}
	})
	r = runCtl(conn, "cluster", "settings")
	for _, want := range []string{"ACME directory:       Let's Encrypt (default)\n", "ACME CA roots:        1 certificate\n", "HTTP/3:               off\n", "Default certificate:  -\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cluster settings lacks %q:\n%s", want, r.stdout)
		}
	}

	// Only the strategy: no edge is sent, so the server keeps it.
	if r := runCtl(conn, "cluster", "settings", "--scheduling-strategy", "binpack"); r.code != 0 {
		t.Fatalf("cluster settings --scheduling-strategy: %+v", r)
	}
	f.locked(func() {
		if got := f.settingsReqs[len(f.settingsReqs)-1]; got.Settings.Edge != nil {
			t.Errorf("a strategy change sent the edge settings: %v", got)
		}
	})

	n := len(f.settingsReqs)
	for want, args := range map[string][]string{
		`ccctl: --acme-directory "http://ca.internal/dir": ACME directories are served over HTTPS: use https://ca.internal/dir`: {"--acme-directory", "http://ca.internal/dir"},
		`ccctl: --acme-directory "ca.internal": the directory URL of the ACME CA`:                                               {"--acme-directory", "ca.internal"},
		`ccctl: --acme-email "ops": one email address`:                                                                          {"--acme-email", "ops"},
		`ccctl: --acme-challenges "dns-01": use http-01, tls-alpn-01`:                                                           {"--acme-challenges", "dns-01"},
		`ccctl: --acme-challenges ",": name at least one`:                                                                       {"--acme-challenges", ","},
		`ccctl: --edge-http3 "maybe": use true or false`:                                                                        {"--edge-http3", "maybe"},
		`ccctl: give --acme-eab-hmac or --acme-eab-hmac-file, not both`:                                                         {"--acme-eab-hmac", "a", "--acme-eab-hmac-file", hmacFile},
		`ccctl: --acme-eab-hmac: not base64`:                                                                                    {"--acme-eab-hmac", "not base64!"},
		"ccctl: --acme-ca-roots " + hmacFile + " holds no PEM certificate":                                                      {"--acme-ca-roots", hmacFile},
		"ccctl: --acme-eab-hmac-file " + filepath.Join(dir, "nope") + ": no such file":                                          {"--acme-eab-hmac-file", filepath.Join(dir, "nope")},
		"ccctl: the external account binding needs its key id too: add --acme-eab-kid KEY_ID":                                   {"--acme-eab-kid", "", "--acme-eab-hmac", "a2V5"},
	} {
		r := runCtl(conn, append([]string{"cluster", "settings"}, args...)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%q: %+v\nwant %q", args, r, want)
		}
	}
	f.locked(func() {
		if len(f.settingsReqs) != n {
			t.Errorf("a refused flag sent %v", f.settingsReqs[n:])
		}
	})
}

func TestClusterSettingsEABNeedsBothParts(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	want := "ccctl: the external account binding needs the HMAC key of that key id too"
	if r := runCtl(conn, "cluster", "settings", "--acme-eab-kid", "kid"); r.code != 1 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("--acme-eab-kid alone with no key stored: %+v", r)
	}
	if r := runCtl(conn, "cluster", "settings", "--acme-eab-kid", "kid", "--acme-eab-hmac", "a2V5"); r.code != 0 || !strings.Contains(r.stdout, "ACME EAB HMAC key:    set\n") {
		t.Errorf("--acme-eab-kid and --acme-eab-hmac: %+v", r)
	}
	// The stored key goes with its key id: another one needs its own.
	if r := runCtl(conn, "cluster", "settings", "--acme-eab-kid", "kid-2"); r.code != 1 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("a new --acme-eab-kid alone: %+v", r)
	}
	// Other flags, or the same key id, keep it.
	for _, flags := range [][]string{{"--acme-email", "ops@example.com"}, {"--acme-eab-kid", "kid"}} {
		if r := runCtl(conn, append([]string{"cluster", "settings"}, flags...)...); r.code != 0 || !strings.Contains(r.stdout, "ACME EAB HMAC key:    set\n") {
			t.Errorf("%q: %+v", flags, r)
		}
	}
	f.locked(func() {
		if e := f.settings.GetEdge(); e.AcmeEabKeyId != "kid" || e.AcmeEabHmacKey != "a2V5" {
			t.Errorf("edge settings now %v", e)
		}
	})
	// An empty key id drops the binding.
	if r := runCtl(conn, "cluster", "settings", "--acme-eab-kid", ""); r.code != 0 || !strings.Contains(r.stdout, "ACME EAB HMAC key:    not set\n") {
		t.Errorf("--acme-eab-kid \"\": %+v", r)
	}
}
