package server_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Server reflection (grpcurl list, Postman) answers any token, lists the
// API's services but not the agents' and servers', and describes them;
// without a token it is refused.
func TestReflection(t *testing.T) {
	srv := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	viewer, err := srv.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(token string, req *reflectionv1.ServerReflectionRequest) (*reflectionv1.ServerReflectionResponse, error) {
		st, err := reflectionv1.NewServerReflectionClient(srv.Conn(token)).ServerReflectionInfo(ctx)
		if err != nil {
			return nil, err
		}
		// A stream the server refused ends Send with io.EOF; Recv then
		// says why.
		if err := st.Send(req); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		defer st.CloseSend()
		return st.Recv()
	}
	list := &reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}
	for _, tok := range []string{srv.Token, viewer.Secret} {
		resp, err := ask(tok, list)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		names := map[string]bool{}
		for _, s := range resp.GetListServicesResponse().GetService() {
			names[s.Name] = true
		}
		if !names["cc.v1.JobService"] || !names["cc.v1.ClusterService"] || names["cc.v1.PeerService"] || names["cc.v1.AgentService"] {
			t.Fatalf("listed services: %v", names)
		}
	}
	resp, err := ask(viewer.Secret, &reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "cc.v1.JobService"}})
	if err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("describe cc.v1.JobService: %v %v", resp, err)
	}
	if _, err := ask("-", list); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a token: %v", err)
	}
	// The older v1alpha, which some clients still speak.
	st, err := reflectionv1alpha.NewServerReflectionClient(srv.Conn(srv.Token)).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}})
	if r, err := st.Recv(); err != nil || len(r.GetListServicesResponse().GetService()) == 0 {
		t.Fatalf("v1alpha list: %v %v", r, err)
	}
}
