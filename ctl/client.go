package ctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/pki"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Client is a connection to the control plane API.
type Client struct {
	conn       *clusterdial.Conn
	addr       string
	caFrom     string
	Cluster    ccv1.ClusterServiceClient
	Nodes      ccv1.NodeServiceClient
	Tokens     ccv1.TokenServiceClient
	Containers ccv1.ContainerServiceClient
	// Stats reads containers' resource use.
	Stats    ccv1.StatsServiceClient
	Images   ccv1.ImageServiceClient
	Volumes  ccv1.VolumeServiceClient
	Services ccv1.ServiceServiceClient
	Jobs     ccv1.JobServiceClient
	Edge     ccv1.EdgeServiceClient
	// Certs manages the certificates the edge serves over HTTPS.
	Certs ccv1.CertServiceClient
	// Audit reads the audit trail.
	Audit ccv1.AuditServiceClient
	// Trust reads the trust record and rotates the cluster CA.
	Trust ccv1.TrustServiceClient
	// Exec runs commands in running containers.
	Exec ccv1.ExecServiceClient

	// systemRoots: the server is verified with the system's roots.
	systemRoots bool
	// target is where the settings came from, and verifier what the
	// server is checked against (nil with system roots).
	target   target
	verifier *pki.Verifier
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// target is the resolved connection settings and where each came from.
type target struct {
	addr, token string
	caPEM       []byte
	caFrom      string
	// systemRoots: verify the server with the system's roots and the host
	// name dialled (caPEM is nil then).
	systemRoots bool
	// members and removed are the context's trust record; ctxName and
	// ctxPath name the context when caPEM came from it (so that a refresh
	// of the record can be saved), and checked is when it was refreshed.
	members, removed []pki.ServerKey
	ctxName, ctxPath string
	checked          time.Time
}

// systemRoots are the roots a server is verified with under
// --tls-system-roots; nil means the system's (tests set their own).
var systemRoots *x509.CertPool

// resolve merges flags/environment with the current context of the config
// file: an explicit setting wins, the context fills in the rest.
func resolve(c *cli.Context) (target, error) {
	t := target{addr: c.String("addr"), token: c.String("token"), systemRoots: c.Bool("tls-system-roots")}
	caPath := c.String("ca-cert")
	if caPath != "" && t.systemRoots {
		return t, errors.New("--ca-cert (CC_CACERT) and --tls-system-roots (CC_TLS_SYSTEM_ROOTS) exclude each other: pin the cluster CA, or trust the system roots")
	}
	cfg := &Contexts{}
	path, err := ConfigPath()
	if err == nil {
		if cfg, err = LoadContexts(path); err != nil {
			return t, err
		}
	} else if c.IsSet("context") {
		return t, err
	}
	name := c.String("context")
	if name == "" {
		name = cfg.Current
	}
	if ctx := cfg.Contexts[name]; ctx != nil {
		if t.addr == "" {
			t.addr = ctx.Addr
		}
		if t.token == "" {
			t.token = ctx.Token
		}
		switch {
		case caPath != "" || t.systemRoots:
		case ctx.CACert != "":
			t.caPEM = []byte(ctx.CACert)
			t.caFrom = "context " + name + " in " + path
			t.members, t.removed, t.checked = ctx.Members, ctx.Removed, ctx.TrustCheckedAt
			t.ctxName, t.ctxPath = name, path
		case ctx.SystemRoots:
			t.systemRoots = true
		}
	} else if c.IsSet("context") {
		return t, fmt.Errorf("no context %q in %s (see `ccctl context ls`)", name, path)
	}
	if caPath != "" {
		pem, err := os.ReadFile(caPath)
		if err != nil {
			return t, fmt.Errorf("--ca-cert: %v", err)
		}
		t.caPEM, t.caFrom = pem, caPath
	}
	if t.systemRoots {
		t.caFrom = "the system's trusted roots"
	}
	switch {
	case t.addr == "" && t.token == "" && t.caPEM == nil && !t.systemRoots:
		return t, errors.New("no control plane configured: run `make dev`, or pass --addr, --token and --ca-cert (or set CC_ADDR, CC_TOKEN and CC_CACERT)")
	case t.addr == "":
		return t, errors.New("no address: pass --addr HOST:PORT or set CC_ADDR")
	case t.token == "":
		return t, errors.New("no API token: pass --token or set CC_TOKEN")
	case t.caPEM == nil && !t.systemRoots:
		return t, errors.New("no CA certificate: pass --ca-cert FILE or set CC_CACERT (the cluster CA, tls/ca.crt in the server's data dir), or --tls-system-roots for a server whose tls_cert_file names the host of --addr")
	}
	for _, a := range strings.Split(t.addr, ",") {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return t, fmt.Errorf("--addr %q: want HOST:PORT, e.g. 127.0.0.1:7443 (several servers: comma-separated)", t.addr)
		}
	}
	return t, nil
}

// dial connects with the settings of c.
func dial(c *cli.Context) (*Client, error) {
	t, err := resolve(c)
	if err != nil {
		return nil, err
	}
	tlsConfig, verifier, err := clientTLS(t)
	if err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(tlsConfig)
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(clusterdial.Bearer(t.token))}
	if c.Bool("stale") {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "cc-stale", "true"), method, req, reply, cc, o...)
		}))
	}
	conn, err := clusterdial.Dial(strings.Split(t.addr, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %v", t.addr, err)
	}
	return &Client{
		conn: conn, addr: t.addr, caFrom: t.caFrom, systemRoots: t.systemRoots, target: t, verifier: verifier,
		Cluster:    ccv1.NewClusterServiceClient(conn),
		Nodes:      ccv1.NewNodeServiceClient(conn),
		Tokens:     ccv1.NewTokenServiceClient(conn),
		Containers: ccv1.NewContainerServiceClient(conn),
		Stats:      ccv1.NewStatsServiceClient(conn),
		Images:     ccv1.NewImageServiceClient(conn),
		Volumes:    ccv1.NewVolumeServiceClient(conn),
		Services:   ccv1.NewServiceServiceClient(conn),
		Jobs:       ccv1.NewJobServiceClient(conn),
		Edge:       ccv1.NewEdgeServiceClient(conn),
		Certs:      ccv1.NewCertServiceClient(conn),
		Audit:      ccv1.NewAuditServiceClient(conn),
		Trust:      ccv1.NewTrustServiceClient(conn),
		Exec:       ccv1.NewExecServiceClient(conn),
	}, nil
}

// connect waits up to timeout for the connection to be ready, so that a
// long stream can run without a deadline. When connecting fails it returns
// nil: the first call fails at once and says why.
func (c *Client) connect(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c.conn.Connect()
	for {
		switch s := c.conn.GetState(); s {
		case connectivity.Ready, connectivity.TransientFailure, connectivity.Shutdown:
			return nil
		default:
			if !c.conn.WaitForStateChange(ctx, s) {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return status.Error(codes.DeadlineExceeded, "connecting")
				}
				return ctx.Err()
			}
		}
	}
}

// Explain turns an RPC error into one line that says what to fix.
func (c *Client) Explain(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unauthenticated:
		return fmt.Errorf("the control plane at %s refused the API token: check --token or CC_TOKEN", c.addr)
	case codes.PermissionDenied:
		return fmt.Errorf("permission denied: %s", msg)
	case codes.Unavailable:
		switch {
		case c.systemRoots && (strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:") || strings.Contains(msg, "certificate")):
			return fmt.Errorf("the server at %s did not present a certificate the system's trusted roots vouch for under that host name: check --addr, and that the server's tls_cert_file names its host; a server without one needs the cluster CA (--ca-cert, CC_CACERT) (%s)", c.addr, lastPart(msg))
		case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:") || strings.Contains(msg, "certificate"):
			return fmt.Errorf("the server at %s is not trusted by the CA from %s: check --addr and --ca-cert (CC_CACERT) (%s)", c.addr, c.caFrom, lastPart(msg))
		case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"), strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "dial"):
			return fmt.Errorf("cannot reach the control plane at %s (%s): check --addr or CC_ADDR, and that cc-controlplane runs", c.addr, lastPart(msg))
		}
		return fmt.Errorf("control plane unavailable at %s: %s", c.addr, msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("no answer from %s in time: check --addr or CC_ADDR, or raise --timeout", c.addr)
	default:
		// A message that already says what went wrong ("…: already
		// exists") is not prefixed with it again.
		if words := codeWords(st.Code()); !strings.Contains(msg, words) {
			return fmt.Errorf("%s: %s", words, msg)
		}
		return errors.New(msg)
	}
}

// codeWords spells a status code as words: NotFound is "not found".
func codeWords(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func lastPart(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	return strings.Trim(msg, "\"")
}

// clientTLS is how ccctl verifies the server: by default any server of the
// cluster, checked by its chain to the pinned cluster CAs and its server
// role whichever address was dialled (and offering pki.ALPNCluster, so that
// a server with an operator's certificate presents its cluster
// certificate), and refused when the context's trust record names it as
// removed or pins another key for its id (pki.Verifier); with system roots,
// the standard check of the chain to those roots and of the host name
// dialled. Verification is never skipped.
func clientTLS(t target) (*tls.Config, *pki.Verifier, error) {
	// Every call ccctl makes is gRPC: it offers pki.ALPNGRPC, so that the
	// server serves it with gRPC's own transport rather than the HTTP
	// server that also serves REST (less CPU per call on the server).
	if t.systemRoots {
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: systemRoots, NextProtos: []string{"h2", pki.ALPNGRPC}}, nil, nil
	}
	v, err := pki.NewVerifier(pki.Trust{CAPEM: t.caPEM, Members: t.members, Removed: t.removed})
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate from %s: %v", t.caFrom, err)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2", pki.ALPNCluster, pki.ALPNGRPC},
		InsecureSkipVerify: true,
		VerifyConnection:   v.VerifyServer,
	}, v, nil
}
