package api_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcerts"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestCertAPI: a certificate added with its key is listed and inspected
// without the key; a key of another certificate, an expired chain and a
// chain not yet valid are refused with the reason; a route names it and
// removing it is then refused, naming the route.
func TestCertAPI(t *testing.T) {
	srv := testcluster.Start(t)
	cl := srv.Client()
	ca := testcerts.NewCA(t)
	leaf := ca.IssueNow(t, "app.localhost", "*.apps.localhost")
	other := ca.IssueNow(t, "app.localhost")
	add := func(name string, chain, key []byte) (*ccv1.Cert, error) {
		r, err := cl.Certs.AddCert(ctxT(t), &ccv1.AddCertRequest{Name: name, ChainPem: string(chain), KeyPem: string(key)})
		return r.GetCert(), err
	}
	refused := func(what string, err error, want string) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want InvalidArgument saying %q", what, err, want)
		}
	}
	_, err := add("site", leaf.CertPEM, other.KeyPEM)
	refused("mismatched key", err, "does not match")
	old := ca.Issue(t, []string{"app.localhost"}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	_, err = add("site", old.CertPEM, old.KeyPEM)
	refused("expired", err, "expired on")
	early := ca.Issue(t, []string{"app.localhost"}, time.Now().Add(time.Hour), time.Now().Add(48*time.Hour))
	_, err = add("site", early.CertPEM, early.KeyPEM)
	refused("not yet valid", err, "not valid before")
	_, err = add("site", leaf.KeyPEM, leaf.CertPEM)
	refused("swapped", err, "")

	c, err := add("site", leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if c.Source != ccv1.CertSource_CERT_SOURCE_MANUAL || len(c.Hosts) != 2 || c.NotAfter == nil || c.Sha256 == "" {
		t.Fatalf("added: %v", c)
	}
	// No read returns the key.
	got, err := cl.Certs.GetCert(ctxT(t), &ccv1.GetCertRequest{Name: "site"})
	if err != nil || strings.Contains(got.String(), "PRIVATE KEY") || !strings.Contains(got.Cert.ChainPem, "BEGIN CERTIFICATE") {
		t.Fatalf("get: %v %v", got, err)
	}
	ls, err := cl.Certs.ListCerts(ctxT(t), &ccv1.ListCertsRequest{})
	if err != nil || len(ls.Certs) != 1 || strings.Contains(ls.String(), "PRIVATE KEY") || ls.Certs[0].ChainPem != "" {
		t.Fatalf("list: %v %v", ls, err)
	}
	if _, err := cl.Edge.CreateRoute(ctxT(t), &ccv1.CreateRouteRequest{Name: "web", Spec: &ccv1.RouteSpec{
		Hosts: []string{"app.localhost"}, Upstreams: []*ccv1.Upstream{{Address: "127.0.0.1:9"}}, Tls: &ccv1.EdgeTLSOptions{Cert: "site"}}}); err != nil {
		t.Fatalf("route: %v", err)
	}
	_, err = cl.Certs.RemoveCert(ctxT(t), &ccv1.RemoveCertRequest{Name: "site"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "route/web") {
		t.Fatalf("remove in use: %v", err)
	}
	ls, _ = cl.Certs.ListCerts(ctxT(t), &ccv1.ListCertsRequest{})
	if len(ls.Certs[0].UsedBy) != 1 || ls.Certs[0].UsedBy[0] != "route/web" {
		t.Fatalf("used by: %v", ls.Certs[0].UsedBy)
	}
	// A manual certificate is not renewed by the cluster.
	if _, err := cl.Certs.RenewCert(ctxT(t), &ccv1.RenewCertRequest{Name: "site"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("renew manual: %v", err)
	}
	// The EAB HMAC key is never read back.
	st, err := cl.Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Edge: &ccv1.EdgeSettings{AcmeEabKeyId: "kid", AcmeEabHmacKey: "c2VjcmV0"}}})
	if err != nil || st.Settings.Edge.AcmeEabHmacKey != "" || !st.Settings.Edge.AcmeEabHmacKeySet {
		t.Fatalf("settings: %v %v", st, err)
	}
}
