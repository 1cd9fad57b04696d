package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/auth"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Uploads over REST: the gateway does not carry client streams, so these
// plain handlers stream a request's raw body into the gRPC method through
// the in-memory connection, with the caller's Authorization header. The
// method's interceptors authorize, rate-limit and audit the call exactly
// as over gRPC, and its own limits bound the upload (limitBody cuts the
// body there too, answering 413).

// restUploadChunk is the size of the chunks a body is sent in (below
// gRPC's 4 MiB message limit).
const restUploadChunk = 256 << 10

// uploadStream is the client side of an upload method.
type uploadStream[Req, Resp any] interface {
	Send(Req) error
	CloseAndRecv() (Resp, error)
}

var restJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// restUpload sends header, then r's body in chunks, on the stream open
// starts, and writes the method's answer as JSON (or its error, as the
// gateway writes them).
func restUpload[Req any, Resp proto.Message](s *Server, w http.ResponseWriter, r *http.Request, onError func(http.ResponseWriter, *http.Request, error),
	open func(ctx context.Context, conn *grpc.ClientConn) (uploadStream[Req, Resp], error), header Req, chunk func([]byte) Req) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	md := metadata.Pairs("authorization", r.Header.Get("Authorization"), "x-forwarded-for", remoteHost(r.RemoteAddr))
	stream, err := open(metadata.NewOutgoingContext(ctx, md), s.gwConn)
	if err != nil {
		onError(w, r, err)
		return
	}
	// finish ends the call and returns its status: the method's answer,
	// or why it refused (a refusal may come before the body is sent).
	finish := func() (Resp, error) { return stream.CloseAndRecv() }
	if err := stream.Send(header); err != nil {
		_, err = finish()
		onError(w, r, err)
		return
	}
	buf := make([]byte, restUploadChunk)
	for {
		n, rerr := io.ReadFull(r.Body, buf)
		if n > 0 {
			if err := stream.Send(chunk(append([]byte(nil), buf[:n]...))); err != nil {
				// io.EOF: the method ended the call (a refusal); its status
				// says why.
				_, err = finish()
				if err == nil {
					err = status.Error(codes.Internal, "the upload ended early")
				}
				onError(w, r, err)
				return
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			// The body was cut at its limit (onError answers 413), or the
			// client went away: the call is cancelled, nothing is stored.
			cancel()
			onError(w, r, status.Errorf(codes.InvalidArgument, "read the upload: %v", rerr))
			return
		}
	}
	resp, err := finish()
	if err != nil {
		onError(w, r, err)
		return
	}
	b, err := restJSON.Marshal(resp)
	if err != nil {
		onError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, string(b))
}

// uploadSize is the request's declared length, 0 when unknown.
func uploadSize(r *http.Request) int64 {
	if r.ContentLength > 0 {
		return r.ContentLength
	}
	return 0
}

// inputUpload serves POST /v1/jobs/inputs: the body (a job's input: a
// tar.gz, or any file) as JobService.UploadInput stores it; the optional
// X-Content-Sha256 header (hex or "sha256:<hex>") is checked. Answers
// {"digest": "sha256:…", "size": N}, for SubmitJob's input.
func (s *Server) inputUpload(onError func(http.ResponseWriter, *http.Request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		restUpload(s, w, r, onError,
			func(ctx context.Context, conn *grpc.ClientConn) (uploadStream[*ccv1.UploadInputRequest, *ccv1.UploadInputResponse], error) {
				return ccv1.NewJobServiceClient(conn).UploadInput(ctx)
			},
			&ccv1.UploadInputRequest{Msg: &ccv1.UploadInputRequest_Header{Header: &ccv1.UploadHeader{Size: uploadSize(r), Sha256: r.Header.Get("X-Content-Sha256")}}},
			func(b []byte) *ccv1.UploadInputRequest {
				return &ccv1.UploadInputRequest{Msg: &ccv1.UploadInputRequest_Chunk{Chunk: b}}
			})
	}
}

// imageUpload serves POST /v1/images/load: the body is an OCI or `docker
// save` archive, loaded as ImageService.LoadImage does. Answers
// {"image": {…}} with the image's names and digest.
func (s *Server) imageUpload(onError func(http.ResponseWriter, *http.Request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		restUpload(s, w, r, onError,
			func(ctx context.Context, conn *grpc.ClientConn) (uploadStream[*ccv1.LoadImageRequest, *ccv1.LoadImageResponse], error) {
				return ccv1.NewImageServiceClient(conn).LoadImage(ctx)
			},
			&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Header{Header: &ccv1.LoadImageHeader{Size: uploadSize(r), Sha256: strings.TrimPrefix(r.Header.Get("X-Content-Sha256"), "sha256:")}}},
			func(b []byte) *ccv1.LoadImageRequest {
				return &ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Chunk{Chunk: b}}
			})
	}
}

// siteUpload serves POST /v1/sites/{name}/deploy: the body is a tar.gz of
// the site's directory, deployed as EdgeService.DeploySite does. The
// site's spec comes from the query (host, repeatable; path_prefix; spa;
// cache_control; not_found); with none of them, a site that exists keeps
// its spec. Answers {"site": {…}} with the new current version.
func (s *Server) siteUpload(onError func(http.ResponseWriter, *http.Request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		spec, err := siteSpecFromQuery(r)
		if err != nil {
			onError(w, r, err)
			return
		}
		restUpload(s, w, r, onError,
			func(ctx context.Context, conn *grpc.ClientConn) (uploadStream[*ccv1.DeploySiteRequest, *ccv1.DeploySiteResponse], error) {
				return ccv1.NewEdgeServiceClient(conn).DeploySite(ctx)
			},
			&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Header{Header: &ccv1.DeploySiteHeader{
				Name: r.PathValue("name"), Spec: spec, Size: uploadSize(r), Sha256: strings.TrimPrefix(r.Header.Get("X-Content-Sha256"), "sha256:")}}},
			func(b []byte) *ccv1.DeploySiteRequest {
				return &ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Chunk{Chunk: b}}
			})
	}
}

// siteSpecFromQuery reads a site's spec from a deploy's query; nil when
// the query names none of its fields.
func siteSpecFromQuery(r *http.Request) (*ccv1.SiteSpec, error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "host", "path_prefix", "spa", "cache_control", "not_found":
		default:
			return nil, status.Errorf(codes.InvalidArgument, "unknown query parameter %q: a deploy takes host (repeatable), path_prefix, spa, cache_control and not_found", k)
		}
	}
	if len(q) == 0 {
		return nil, nil
	}
	spec := &ccv1.SiteSpec{Hosts: q["host"], PathPrefix: q.Get("path_prefix"), CacheControl: q.Get("cache_control"), NotFound: q.Get("not_found")}
	if v := q.Get("spa"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "spa=%q: give true or false", v)
		}
		spec.Spa = b
	}
	return spec, nil
}

// whoami serves GET /v1/whoami, behind auth's Middleware: the caller's
// token id and role, {"token_id": "…", "role": "admin"}, so that a client
// (the dashboard) shows only what the token may do.
func whoami(onError func(http.ResponseWriter, *http.Request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok || p.TokenID == "" {
			onError(w, r, status.Error(codes.Unauthenticated, auth.ErrUnauthenticated.Error()))
			return
		}
		b, _ := json.Marshal(struct {
			TokenID string `json:"token_id"`
			Role    string `json:"role"`
		}{p.TokenID, auth.RoleName(p.Role)}) // strings only: cannot fail
		w.Header().Set("Cache-Control", "private, no-store")
		writeJSON(w, http.StatusOK, string(b))
	}
}
