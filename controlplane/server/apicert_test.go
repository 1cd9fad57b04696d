package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testcerts"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// With tls_cert_file and tls_key_file, the API port presents the operator's
// certificate to a client that asks for one of its names and trusts only the
// operator's CA (a browser, curl, a gRPC client with the system roots), and
// the cluster certificate to the cluster's own clients, which pin the cluster
// CA, whatever name they dial. New files are picked up without a restart; a
// bad pair is refused and the previous one kept.
func TestOperatorCertOnTheAPIPort(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	first := ca.IssueNow(t, "api.localhost")
	certFile, keyFile := first.Write(t, dir)
	srv := testcluster.Start(t, func(c *testcluster.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	clusterPool, err := pki.Pool(srv.CACert)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// leafFor handshakes with cfg and returns the certificate the server
	// presented.
	leafFor := func(cfg *tls.Config) (*x509.Certificate, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
		conn, err := d.DialContext(ctx, "tcp", srv.Addr())
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
	}
	browser := func(name string) *tls.Config {
		return &tls.Config{ServerName: name, RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	}

	t.Run("a client of the operator's CA verifies", func(t *testing.T) {
		leaf, err := leafFor(browser("api.localhost"))
		if err != nil {
			t.Fatalf("handshake with SNI api.localhost and the operator's CA as the only root: %v", err)
		}
		if !leaf.Equal(first.Cert) {
			t.Errorf("presented %s, want the operator's certificate", leaf.Subject)
		}
		// REST, as a browser or curl reaches it.
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   browser("api.localhost"),
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
			},
		}}
		_, port, _ := net.SplitHostPort(srv.Addr())
		resp, err := hc.Get("https://api.localhost:" + port + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Errorf("GET /healthz: %s %s %s", resp.Proto, resp.Status, body)
		}
		// gRPC, as a client that trusts the system roots reaches it.
		conn, err := grpc.NewClient(srv.Addr(), grpc.WithAuthority("api.localhost"),
			grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})),
			grpc.WithPerRPCCredentials(clusterdial.Bearer(srv.Token)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := ccv1.NewClusterServiceClient(conn).GetStatus(ctx, &ccv1.GetStatusRequest{}); err != nil {
			t.Errorf("gRPC GetStatus with the operator's CA: %v", err)
		}
	})

	t.Run("pinned cluster clients still verify against the cluster CA", func(t *testing.T) {
		// As ccctl with a pinned CA and the agents dial (the ccctl
		// options), even by the operator's name.
		for _, name := range []string{"api.localhost", "localhost", "127.0.0.1"} {
			cfg := pki.OfferClusterALPN(&tls.Config{
				ServerName: name, MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
				VerifyConnection: func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, clusterPool) },
			})
			if _, err := leafFor(cfg); err != nil {
				t.Errorf("pinned client dialling %s: %v", name, err)
			}
		}
		// A join by the operator's name (agents and servers).
		if _, err := leafFor(withName(pki.PinnedTLS(pki.Digest(mustCert(t, srv.CACert)), srv.Addr()), "api.localhost")); err != nil {
			t.Errorf("join pinned to the cluster CA's digest, by the operator's name: %v", err)
		}
		// The harness's client: the cluster CA as root, by IP.
		if _, err := srv.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{}); err != nil {
			t.Errorf("GetStatus with the cluster CA: %v", err)
		}
		// Without the cluster ALPN, the operator's name gets the
		// operator's certificate, which the cluster CA does not sign.
		if _, err := leafFor(&tls.Config{ServerName: "api.localhost", RootCAs: clusterPool}); err == nil {
			t.Error("a client of the cluster CA without the cluster ALPN verified the operator's name")
		}
	})

	t.Run("client certificates are still checked", func(t *testing.T) {
		// The server's own certificate, a client certificate of the
		// cluster, is accepted beside the operator's certificate.
		own, err := tls.LoadX509KeyPair(filepath.Join(srv.Config.DataDir, "tls", "server.crt"), filepath.Join(srv.Config.DataDir, "tls", "server.key"))
		if err != nil {
			t.Fatal(err)
		}
		stranger := ca.IssueNow(t, "client.localhost")
		bad, err := tls.X509KeyPair(stranger.CertPEM, stranger.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		get := func(client tls.Certificate) error {
			cfg := browser("api.localhost")
			// Sent even when the server's request names other CAs.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &client, nil }
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
				}}}
			resp, err := hc.Get("https://api.localhost/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err
		}
		if err := get(own); err != nil {
			t.Errorf("a cluster client certificate: %v", err)
		}
		if err := get(bad); err == nil {
			t.Error("a client certificate of another CA was accepted")
		}
	})

	t.Run("new files are used without a restart", func(t *testing.T) {
		second := ca.IssueNow(t, "api.localhost", "www.localhost")
		second.Write(t, dir)
		if !waitFor(func() bool {
			leaf, err := leafFor(browser("www.localhost"))
			return err == nil && leaf.Equal(second.Cert)
		}) {
			t.Fatal("the rewritten certificate is not presented")
		}
		if leaf, err := leafFor(browser("api.localhost")); err != nil || !leaf.Equal(second.Cert) {
			t.Errorf("api.localhost after the reload: %v", err)
		}

		// A pair whose key is not the certificate's is refused; the
		// server goes on presenting the previous certificate.
		third, fourth := ca.IssueNow(t, "api.localhost"), ca.IssueNow(t, "api.localhost")
		if err := os.WriteFile(certFile, third.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, fourth.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * testcluster.CertPollInterval)
		if leaf, err := leafFor(browser("api.localhost")); err != nil || !leaf.Equal(second.Cert) {
			t.Errorf("after a mismatched pair: err %v; want the previous certificate kept", err)
		}
		// Once the key is right, the new certificate is used.
		if err := os.WriteFile(keyFile, third.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if !waitFor(func() bool {
			leaf, err := leafFor(browser("api.localhost"))
			return err == nil && leaf.Equal(third.Cert)
		}) {
			t.Fatal("the fixed pair is not presented")
		}
	})
}

func withName(cfg *tls.Config, name string) *tls.Config {
	cfg.ServerName = name
	return cfg
}

func mustCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
