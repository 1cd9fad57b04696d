package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/coder/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// execMessageLimit bounds one WebSocket message from the caller (a piece
// of stdin, as base64 in JSON).
const execMessageLimit = 1 << 20

var execJSON = protojson.MarshalOptions{UseProtoNames: true}

// execWebSocket serves GET /v1/containers/{id}/exec: ExecService.Exec over
// a WebSocket, for REST callers (grpc-gateway does not carry two-way
// streams). Each text message is an ExecRequest or ExecResponse in JSON
// (the protobuf JSON mapping, bytes as base64): the caller sends a start
// first (its container is the path's), then stdin, resize or
// close_stdin; it gets stdout, stderr and, last, exit. An error ends the
// socket after a message {"error": {"code": N, "message": "…"}}. The
// call goes through the gRPC server with the caller's Authorization
// header, so it is authorized (admin only) and audited as any exec.
func (s *Server) execWebSocket(w http.ResponseWriter, r *http.Request) {
	// The default origin check (same host) keeps other sites' pages out.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{ExecSubprotocol}})
	if err != nil {
		return // Accept answered the request
	}
	// On the way out: stop the call, close the socket, then wait for
	// the reader (which both end).
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.CloseNow()
	conn.SetReadLimit(execMessageLimit)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	fail := func(err error) {
		st := status.Convert(err)
		b, _ := protojsonError(st.Code(), st.Message())
		_ = conn.Write(ctx, websocket.MessageText, b)
		_ = conn.Close(websocket.StatusPolicyViolation, truncate(st.Message(), 120))
	}
	first, err := readExecRequest(ctx, conn)
	if err != nil {
		fail(err)
		return
	}
	start := first.GetStart()
	if start == nil {
		fail(status.Error(codes.InvalidArgument, "the first message is a start: {\"start\": {\"args\": [\"/bin/sh\"]}}"))
		return
	}
	start.Container = r.PathValue("id")
	md := metadata.Pairs("authorization", r.Header.Get("Authorization"), "x-forwarded-for", remoteHost(r.RemoteAddr))
	stream, err := ccv1.NewExecServiceClient(s.gwConn).Exec(metadata.NewOutgoingContext(ctx, md))
	if err != nil {
		fail(err)
		return
	}
	if err := stream.Send(first); err != nil {
		// io.EOF: the server ended the call already (a refusal races the
		// first message); its status, from Recv, says why.
		if errors.Is(err, io.EOF) {
			if _, rerr := stream.Recv(); rerr != nil && !errors.Is(rerr, io.EOF) {
				err = rerr
			}
		}
		fail(err)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := readExecRequest(ctx, conn)
			if err != nil {
				if websocket.CloseStatus(err) != -1 || errors.Is(err, io.EOF) {
					_ = stream.CloseSend()
					return
				}
				cancel()
				return
			}
			if m.GetStart() != nil {
				continue
			}
			if stream.Send(m) != nil {
				return
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "the exec ended without an exit status")
			}
			fail(err)
			return
		}
		b, err := execJSON.Marshal(m)
		if err != nil {
			fail(err)
			return
		}
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			return
		}
		if m.GetExit() != nil {
			_ = conn.Close(websocket.StatusNormalClosure, "exited")
			return
		}
	}
}

func readExecRequest(ctx context.Context, conn *websocket.Conn) (*ccv1.ExecRequest, error) {
	_, b, err := conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	m := &ccv1.ExecRequest{}
	if err := protojson.Unmarshal(b, m); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "a message is not an ExecRequest in JSON: %v", err)
	}
	return m, nil
}

func protojsonError(code codes.Code, msg string) ([]byte, error) {
	type execError struct {
		Code    int32  `json:"code"`
		Message string `json:"message"`
	}
	return json.Marshal(struct {
		Error execError `json:"error"`
	}{execError{int32(code), msg}})
}

// ExecSubprotocol is the WebSocket subprotocol of the exec socket. A
// browser, which cannot set an Authorization header on a WebSocket,
// offers it together with ExecTokenProtocolPrefix+token:
//
//	new WebSocket(url, ["cc.exec.v1", "cc.token." + token])
//
// and the server selects ExecSubprotocol (the token is never echoed). A
// client that sends Authorization (ccctl, curl) need offer neither.
const ExecSubprotocol = "cc.exec.v1"

// ExecTokenProtocolPrefix marks the offered subprotocol that carries the
// caller's API token.
const ExecTokenProtocolPrefix = "cc.token."

// execTokenProtocol takes the token of a request without Authorization
// from its offered subprotocols (ExecTokenProtocolPrefix) into its
// Authorization header, and drops it from the offers, so that the
// middleware and the gRPC call see it as any other caller's.
func execTokenProtocol(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offers := r.Header.Values("Sec-WebSocket-Protocol")
		if len(offers) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		var keep []string
		token := ""
		for _, line := range offers {
			for _, p := range strings.Split(line, ",") {
				p = strings.TrimSpace(p)
				if t, ok := strings.CutPrefix(p, ExecTokenProtocolPrefix); ok {
					token = t
					continue
				}
				if p != "" {
					keep = append(keep, p)
				}
			}
		}
		if token != "" {
			r = r.Clone(r.Context())
			if r.Header.Get("Authorization") == "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			r.Header.Del("Sec-WebSocket-Protocol")
			if len(keep) > 0 {
				r.Header.Set("Sec-WebSocket-Protocol", strings.Join(keep, ", "))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// remoteHost is the host of a request's remote address.
func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
