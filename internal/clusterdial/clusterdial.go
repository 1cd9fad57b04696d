// Package clusterdial connects to a control plane through the list of its
// servers' API addresses: one gRPC connection that moves to another server
// when the one it uses goes away, and whose list can be updated.
package clusterdial

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Conn is a connection to the cluster.
type Conn struct {
	*grpc.ClientConn
	r *manual.Resolver
}

// Dial connects to addrs (HOST:PORT each), trying them in order and failing
// over to the next when a server goes away. opts carry the credentials.
func Dial(addrs []string, opts ...grpc.DialOption) (*Conn, error) {
	return dial(addrs, `{"loadBalancingConfig": [{"pick_first": {}}]}`, opts)
}

// DialSpread is Dial for many clients of the same servers (agents): each
// starts at a random server of the list, so that a thousand nodes do not
// all hold their sessions on the first one.
func DialSpread(addrs []string, opts ...grpc.DialOption) (*Conn, error) {
	return dial(addrs, `{"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": true}}]}`, opts)
}

func dial(addrs []string, serviceConfig string, opts []grpc.DialOption) (*Conn, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no control plane address")
	}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("address %q: want HOST:PORT", a)
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	r := manual.NewBuilderWithScheme("cc-" + hex.EncodeToString(b))
	r.InitialState(state(addrs))
	opts = append(opts,
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(serviceConfig),
	)
	cc, err := grpc.NewClient(r.Scheme()+":///control-plane", opts...)
	if err != nil {
		return nil, err
	}
	return &Conn{ClientConn: cc, r: r}, nil
}

// Update replaces the list of addresses.
func (c *Conn) Update(addrs []string) {
	if len(addrs) > 0 {
		c.r.UpdateState(state(addrs))
	}
}

func state(addrs []string) resolver.State {
	eps := make([]resolver.Endpoint, 0, len(addrs))
	for _, a := range addrs {
		// The TLS server name is the host dialled, not the channel's
		// authority ("control-plane"): a client that checks the server's
		// name (ccctl with the system roots) checks the right one, and a
		// server with an operator's certificate sees which name was asked.
		host, _, _ := net.SplitHostPort(a)
		eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a, ServerName: host}}})
	}
	return resolver.State{Endpoints: eps}
}

// Bearer is per-call credentials carrying an API token
// (grpc.WithPerRPCCredentials(clusterdial.Bearer(token))): every client of
// the API, ccctl, the tests and the benchmarks, sends its token this way.
type Bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// token never travels in clear.
func (Bearer) RequireTransportSecurity() bool { return true }
