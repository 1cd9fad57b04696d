package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/blobs"
	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/streamio"
	"github.com/containercodes/cc/internal/tracing"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// peers dials other servers' PeerService with this server's certificate:
// forwarded writes, read indexes, joins and status.
type peers struct {
	fsm *fsm.FSM
	tls *tls.Config
	// trace sends the caller's span with each call (a forwarded write
	// continues its trace on the leader).
	trace stats.Handler

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by API address
}

func newPeers(f *fsm.FSM, tlsConfig *tls.Config, tp trace.TracerProvider) *peers {
	return &peers{fsm: f, tls: tlsConfig, trace: tracing.ClientHandler(tp), conns: map[string]*grpc.ClientConn{}}
}

// Cluster reaches a server's ClusterService.
func (p *peers) Cluster(serverID string) (ccv1.ClusterServiceClient, error) {
	conn, err := p.conn(serverID)
	if err != nil {
		return nil, err
	}
	return ccv1.NewClusterServiceClient(conn), nil
}

func (p *peers) client(serverID string) (ccv1.PeerServiceClient, error) {
	conn, err := p.conn(serverID)
	if err != nil {
		return nil, err
	}
	return ccv1.NewPeerServiceClient(conn), nil
}

func (p *peers) conn(serverID string) (*grpc.ClientConn, error) {
	rec, err := p.fsm.Server(serverID)
	if err != nil || rec.ApiAddress == "" {
		return nil, fmt.Errorf("%w: no API address known for server %s", raftstore.ErrNotLeader, serverID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	conn := p.conns[rec.ApiAddress]
	if conn == nil {
		conn, err = grpc.NewClient(rec.ApiAddress, grpc.WithTransportCredentials(credentials.NewTLS(p.tls)), grpc.WithStatsHandler(p.trace))
		if err != nil {
			return nil, err
		}
		p.conns[rec.ApiAddress] = conn
	}
	return conn, nil
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = map[string]*grpc.ClientConn{}
}

// Apply forwards a write to the leader.
func (p *peers) Apply(ctx context.Context, leaderID string, cmd []byte) (uint64, error) {
	c, err := p.client(leaderID)
	if err != nil {
		return 0, err
	}
	resp, err := c.Apply(ctx, &ccv1.ApplyRequest{Command: cmd})
	if err != nil {
		if neverSent(err) {
			// The leader just went away: Apply retries (with the next
			// leader once there is one) until its deadline.
			return 0, fmt.Errorf("%w: forward to leader %s: %v", raftstore.ErrNotAppended, leaderID, status.Convert(err).Message())
		}
		return 0, fmt.Errorf("%w: forward to leader %s: %v", raftstore.ErrNotLeader, leaderID, status.Convert(err).Message())
	}
	if resp.ErrorKind == "not_appended" {
		return 0, raftstore.ErrNotAppended
	}
	return resp.Index, fsm.ErrorFromKind(resp.ErrorKind, resp.Error)
}

// neverSent reports whether a call failed because no connection to the
// server could be made (it refuses connections, or is unreachable): the
// request was not sent, so the command was not appended anywhere. Any
// other failure may have come after the leader received it.
func neverSent(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable && strings.Contains(st.Message(), "Error while dialing")
}

// ReadIndex asks the leader for a read index.
func (p *peers) ReadIndex(ctx context.Context, leaderID string) (uint64, error) {
	c, err := p.client(leaderID)
	if err != nil {
		return 0, err
	}
	resp, err := c.ReadIndex(ctx, &ccv1.ReadIndexRequest{})
	if err != nil {
		return 0, fmt.Errorf("%w: read index from leader %s: %v", raftstore.ErrNotLeader, leaderID, status.Convert(err).Message())
	}
	return resp.Index, nil
}

// JoinServer forwards a join to the leader.
func (p *peers) JoinServer(ctx context.Context, leaderID string, req *ccv1.JoinServerRequest) (*ccv1.JoinServerResponse, error) {
	c, err := p.client(leaderID)
	if err != nil {
		return nil, err
	}
	return c.JoinServer(ctx, req)
}

// RelayLogs asks a server for a container's logs.
func (p *peers) RelayLogs(ctx context.Context, serverID string, req *ccv1.RelayLogsRequest) (ccv1.PeerService_RelayLogsClient, error) {
	c, err := p.client(serverID)
	if err != nil {
		return nil, err
	}
	return c.RelayLogs(ctx, req)
}

// RelayStats asks a server to sample containers on a node it holds.
func (p *peers) RelayStats(ctx context.Context, serverID string, req *ccv1.RelayStatsRequest) (*ccv1.RelayStatsResponse, error) {
	c, err := p.client(serverID)
	if err != nil {
		return nil, err
	}
	return c.RelayStats(ctx, req)
}

// RelayExec opens an exec through a server.
func (p *peers) RelayExec(ctx context.Context, serverID string) (ccv1.PeerService_RelayExecClient, error) {
	c, err := p.client(serverID)
	if err != nil {
		return nil, err
	}
	return c.RelayExec(ctx)
}

// PeerStatus asks a server for its raft view.
func (p *peers) PeerStatus(ctx context.Context, serverID string) (*ccv1.PeerStatusResponse, error) {
	c, err := p.client(serverID)
	if err != nil {
		return nil, err
	}
	return c.PeerStatus(ctx, &ccv1.PeerStatusRequest{})
}

// apiAdvertise is the API address other servers and clients use.
func apiAdvertise(cfgAdvertise string, bound net.Addr, raftAdvertise string) string {
	if cfgAdvertise != "" {
		return cfgAdvertise
	}
	tcp := bound.(*net.TCPAddr)
	if !tcp.IP.IsUnspecified() {
		return tcp.String()
	}
	host, _, err := net.SplitHostPort(raftAdvertise)
	if err != nil {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// joinCluster joins an existing cluster as a new server: it pins the CA by
// the digest in the token, sends a certificate request, and stores the
// certificate and the CA it gets back in the data dir.
func joinCluster(ctx context.Context, dataDir, serverID, name, joinAddr, token, raftAddr, apiAddr string) error {
	tok, err := pki.ParseJoinToken(token)
	if err != nil {
		return err
	}
	key, csr, err := pki.NewKeyAndCSR(serverID)
	if err != nil {
		return err
	}
	pin := pki.PinnedTLS(tok.CADigest, joinAddr)
	conn, err := grpc.NewClient(joinAddr, grpc.WithTransportCredentials(credentials.NewTLS(pin)))
	if err != nil {
		return fmt.Errorf("--join %q: %w", joinAddr, err)
	}
	defer conn.Close()
	req := &ccv1.JoinServerRequest{
		Token: token, CsrDer: csr, ServerId: serverID, Name: name, RaftAddress: raftAddr, ApiAddress: apiAddr,
	}
	// An election in progress answers Unavailable before anything is
	// written: wait it out for a while, as a user would retry.
	var resp *ccv1.JoinServerResponse
	retry := time.NewTicker(500 * time.Millisecond)
	defer retry.Stop()
join:
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err = ccv1.NewPeerServiceClient(conn).JoinServer(ctx, req)
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			break join
		case <-retry.C:
		}
	}
	if err != nil {
		msg := status.Convert(err).Message()
		if i := strings.Index(msg, pki.ErrCAMismatch.Error()); i >= 0 {
			return errors.New(strings.TrimRight(msg[i:], "\""))
		}
		return fmt.Errorf("join %s: %s", joinAddr, msg)
	}
	if err := tok.CheckJoinCA(resp.CaPem); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(dataDir, dirTLS)
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(tlsDir, fileServerKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(tlsDir, fileServerCert), resp.CertificatePem, 0o644); err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(tlsDir, fileCACert), resp.CaPem, 0o644)
}

// blobPeers copies blobs between this server and the others for the
// replicated blob store (blobs never go through raft).
type blobPeers struct {
	*peers
	raft  *raftstore.Store
	blobs *blobstore.Store
}

var _ blobs.Peers = (*blobPeers)(nil)

// Push sends a local blob to every other voter, in parallel, and counts the
// servers that hold it.
func (b *blobPeers) Push(ctx context.Context, digest string) (have, voters int, err error) {
	st, err := b.raft.Status()
	if err != nil {
		return 1, 1, err
	}
	var mu sync.Mutex
	var errs []error
	have, voters = 1, 0
	var wg sync.WaitGroup
	for _, srv := range st.Servers {
		if srv.Suffrage != "Voter" {
			continue
		}
		voters++
		if srv.ID == st.ID {
			continue
		}
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			err := b.pushTo(ctx, id, digest)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				return
			}
			have++
		}(srv.ID)
	}
	wg.Wait()
	if voters == 0 {
		voters = 1
	}
	return have, voters, errors.Join(errs...)
}

func (b *blobPeers) pushTo(ctx context.Context, serverID, digest string) error {
	c, err := b.client(serverID)
	if err != nil {
		return err
	}
	rc, _, err := b.blobs.Open(digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	stream, err := c.PushBlob(ctx)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	first := true
	for {
		n, rerr := rc.Read(buf)
		if n > 0 || first {
			msg := &ccv1.PushBlobRequest{Data: buf[:n]}
			if first {
				msg.Digest, first = digest, false
			}
			if err := stream.Send(msg); err != nil {
				_, err = stream.CloseAndRecv()
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

// Pull fetches a blob from the first server that has it.
func (b *blobPeers) Pull(ctx context.Context, digest string) error {
	st, err := b.raft.Status()
	if err != nil {
		return err
	}
	var errs []error
	for _, srv := range st.Servers {
		if srv.ID == st.ID {
			continue
		}
		if err := b.pullFrom(ctx, srv.ID, digest); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", srv.ID, err))
			continue
		}
		return nil
	}
	return fmt.Errorf("no server could send %s: %w", digest, errors.Join(errs...))
}

func (b *blobPeers) pullFrom(ctx context.Context, serverID, digest string) error {
	c, err := b.client(serverID)
	if err != nil {
		return err
	}
	stream, err := c.PullBlob(ctx, &ccv1.PullBlobRequest{Digest: digest})
	if err != nil {
		return err
	}
	r := streamio.Reader(nil, func() ([]byte, error) {
		m, err := stream.Recv()
		return m.GetData(), err
	})
	_, _, err = b.blobs.Put(ctx, r, digest, 0)
	return err
}

// otherSessions gathers the last heartbeat of the agent sessions of every
// other server; one that does not answer contributes none.
func (p *peers) otherSessions(ctx context.Context, r *raftstore.Store) map[string]time.Time {
	out := map[string]time.Time{}
	for _, s := range p.otherSessionList(ctx, r) {
		if t := time.UnixMilli(s.LastSeenUnixMs); t.After(out[s.NodeId]) {
			out[s.NodeId] = t
		}
	}
	return out
}

// otherSessionList lists the agent sessions of every other server, asked
// at once; one that does not answer within 2 s contributes none.
func (p *peers) otherSessionList(ctx context.Context, r *raftstore.Store) []*ccv1.NodeSession {
	st, err := r.Status()
	if err != nil {
		return nil
	}
	var (
		mu  sync.Mutex
		out []*ccv1.NodeSession
		wg  sync.WaitGroup
	)
	for _, srv := range st.Servers {
		if srv.ID == st.ID {
			continue
		}
		c, err := p.client(srv.ID)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			resp, err := c.Sessions(cctx, &ccv1.SessionsRequest{})
			if err != nil {
				return
			}
			mu.Lock()
			out = append(out, resp.Sessions...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
