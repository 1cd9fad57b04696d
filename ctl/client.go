package ctl

import (
	"context"
	"crypto/tls"
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
	Images     ccv1.ImageServiceClient
	Services   ccv1.ServiceServiceClient
	Jobs       ccv1.JobServiceClient
	Edge       ccv1.EdgeServiceClient
	// Certs manages the certificates the edge serves over HTTPS.
	Certs ccv1.CertServiceClient
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// target is the resolved connection settings and where each came from.
type target struct {
	addr, token string
	caPEM       []byte
	caFrom      string
}

// resolve merges flags/environment with the current context of the config
// file: an explicit setting wins, the context fills in the rest.
func resolve(c *cli.Context) (target, error) {
	t := target{addr: c.String("addr"), token: c.String("token")}
	caPath := c.String("ca-cert")
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
		if caPath == "" && ctx.CACert != "" {
			t.caPEM = []byte(ctx.CACert)
			t.caFrom = "context " + name + " in " + path
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
	switch {
	case t.addr == "" && t.token == "" && t.caPEM == nil:
		return t, errors.New("no control plane configured: run `make dev`, or pass --addr, --token and --ca-cert (or set CC_ADDR, CC_TOKEN and CC_CACERT)")
	case t.addr == "":
		return t, errors.New("no address: pass --addr HOST:PORT or set CC_ADDR")
	case t.token == "":
		return t, errors.New("no API token: pass --token or set CC_TOKEN")
	case t.caPEM == nil:
		return t, errors.New("no CA certificate: pass --ca-cert FILE or set CC_CACERT (the cluster CA, tls/ca.crt in the server's data dir)")
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
	pool, err := pki.Pool(t.caPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate from %s: %v", t.caFrom, err)
	}
	// Any server of the cluster may answer: it is checked by its chain to
	// the cluster CA and its server role, whichever address was dialled.
	creds := credentials.NewTLS(&tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, pool) },
	})
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
		conn: conn, addr: t.addr, caFrom: t.caFrom,
		Cluster:    ccv1.NewClusterServiceClient(conn),
		Nodes:      ccv1.NewNodeServiceClient(conn),
		Tokens:     ccv1.NewTokenServiceClient(conn),
		Containers: ccv1.NewContainerServiceClient(conn),
		Images:     ccv1.NewImageServiceClient(conn),
		Services:   ccv1.NewServiceServiceClient(conn),
		Jobs:       ccv1.NewJobServiceClient(conn),
		Edge:       ccv1.NewEdgeServiceClient(conn),
		Certs:      ccv1.NewCertServiceClient(conn),
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
