package server

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// registerReflection serves gRPC server reflection (v1, and v1alpha for
// older clients), so that grpcurl and Postman find the API without its
// .proto files. Like every call it needs a token (of any role); it lists
// the API's services, not those of agents and servers, which take
// certificates only.
func registerReflection(s *grpc.Server) {
	opts := reflection.ServerOptions{Services: publicServices{s}}
	v1 := reflection.NewServerV1(opts)
	reflectionv1.RegisterServerReflectionServer(s, v1)
	reflectionv1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
}

// publicServices is the server's services without the agents' and the
// servers' own.
type publicServices struct{ s *grpc.Server }

func (p publicServices) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := map[string]grpc.ServiceInfo{}
	for name, info := range p.s.GetServiceInfo() {
		if name == ccv1.AgentService_ServiceDesc.ServiceName || name == ccv1.PeerService_ServiceDesc.ServiceName {
			continue
		}
		out[name] = info
	}
	return out
}
