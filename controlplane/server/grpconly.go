package server

import (
	"context"
	"crypto/tls"
	"net"

	"google.golang.org/grpc/credentials"
)

// handshaken are the transport credentials of the gRPC server for
// connections whose TLS handshake the handshake listener already did (those
// that offered pki.ALPNGRPC): the connection's TLS state becomes the call's
// credentials.TLSInfo, as for calls served through the HTTP server. Any
// other connection (the in-memory one of the REST gateway) carries no
// credentials, as without transport credentials.
type handshaken struct{}

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return c, nil, nil
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errHandshakenClient
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"}
}

func (h handshaken) Clone() credentials.TransportCredentials { return h }

func (handshaken) OverrideServerName(string) error { return nil }

type handshakenError struct{}

func (handshakenError) Error() string {
	return "server transport credentials used to dial: use credentials.NewTLS for a client"
}

var errHandshakenClient error = handshakenError{}
