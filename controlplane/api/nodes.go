package api

import (
	"context"
	"sort"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/orchestrator"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// NodeService implements cc.v1.NodeService: the agents' nodes, with what
// is placed on them and when this server last heard from them.
type NodeService struct {
	ccv1.UnimplementedNodeServiceServer
	core *Core
}

// NewNodeService returns the node API.
func NewNodeService(core *Core) *NodeService { return &NodeService{core: core} }

// Register adds the service to a gRPC server.
func (s *NodeService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterNodeServiceServer(g, s)
}

// ListNodes implements NodeService.
func (s *NodeService) ListNodes(ctx context.Context, _ *ccv1.ListNodesRequest) (*ccv1.ListNodesResponse, error) {
	nodes, err := s.core.FSM.Nodes()
	if err != nil {
		return nil, err
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for _, n := range nodes {
		if err := s.view(n); err != nil {
			return nil, err
		}
	}
	return &ccv1.ListNodesResponse{Nodes: nodes}, nil
}

// GetNode implements NodeService.
func (s *NodeService) GetNode(ctx context.Context, req *ccv1.GetNodeRequest) (*ccv1.GetNodeResponse, error) {
	n, err := s.core.node(req.GetId())
	if err != nil {
		return nil, err
	}
	if err := s.view(n); err != nil {
		return nil, err
	}
	return &ccv1.GetNodeResponse{Node: n}, nil
}

// view completes a stored node for the caller: its last heartbeat here
// and what is placed on it.
func (s *NodeService) view(n *ccv1.Node) error {
	if s.core.Sessions != nil {
		if t, ok := s.core.Sessions.LastSeen(n.Id); ok {
			n.LastSeen = timestamppb.New(t)
		}
		n.Edge = s.core.Sessions.EdgeTrafficOf(n.Id)
	}
	return s.withAllocation(n)
}

// RemoveNode implements NodeService.
func (s *NodeService) RemoveNode(ctx context.Context, req *ccv1.RemoveNodeRequest) (*ccv1.RemoveNodeResponse, error) {
	n, err := s.core.node(req.GetId())
	if err != nil {
		return nil, err
	}
	if n.State == ccv1.NodeState_NODE_STATE_READY && !req.GetForce() {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is ready: stop its agent first, or remove it with --force", n.Name)
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_NODE, &statev1.RemoveNode{Id: n.Id}); err != nil {
		return nil, err
	}
	return &ccv1.RemoveNodeResponse{}, nil
}

// UpdateNode implements NodeService: availability and operator labels.
func (s *NodeService) UpdateNode(ctx context.Context, req *ccv1.UpdateNodeRequest) (*ccv1.UpdateNodeResponse, error) {
	n, err := s.core.node(req.GetId())
	if err != nil {
		return nil, err
	}
	switch req.GetAvailability() {
	case ccv1.NodeAvailability_NODE_AVAILABILITY_UNSPECIFIED, ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		ccv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN:
	default:
		return nil, status.Error(codes.InvalidArgument, "availability: use active, pause or drain")
	}
	upd := &statev1.UpdateNode{Id: n.Id, Availability: req.GetAvailability()}
	if len(req.GetAddLabels()) > 0 || len(req.GetRemoveLabels()) > 0 {
		labels := map[string]string{}
		for k, v := range n.UserLabels {
			labels[k] = v
		}
		for k, v := range req.GetAddLabels() {
			if k == "" || strings.ContainsAny(k, "=!, ") || len(k) > 128 || len(v) > 256 {
				return nil, status.Errorf(codes.InvalidArgument, "label %q=%q: a key is 1-128 characters without '=', '!', ',' or spaces; a value at most 256", k, v)
			}
			labels[k] = v
		}
		for _, k := range req.GetRemoveLabels() {
			if _, ok := labels[k]; !ok {
				if _, agent := n.Labels[k]; agent {
					return nil, status.Errorf(codes.InvalidArgument, "label %q comes from the agent's --label flag on node %s: change it there", k, n.Name)
				}
				return nil, status.Errorf(codes.NotFound, "node %s has no label %q", n.Name, k)
			}
			delete(labels, k)
		}
		upd.UserLabels, upd.SetUserLabels = labels, true
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_UPDATE_NODE, upd); err != nil {
		return nil, err
	}
	out, err := s.core.FSM.Node(n.Id)
	if err != nil {
		return nil, err
	}
	if err := s.view(out); err != nil {
		return nil, err
	}
	return &ccv1.UpdateNodeResponse{Node: out}, nil
}

// withAllocation fills what is placed on a node.
func (s *NodeService) withAllocation(n *ccv1.Node) error {
	recs, err := s.core.FSM.NodeContainers(n.Id)
	if err != nil {
		return err
	}
	alloc := &ccv1.Resources{}
	var tasks uint32
	for _, r := range recs {
		c := r.Container
		if c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING {
			continue
		}
		res := orchestrator.Reservation(c.Spec)
		alloc.CpuMillis += res.CPUMillis
		alloc.MemoryBytes += res.MemoryBytes
		tasks++
	}
	n.Allocated, n.Tasks = alloc, tasks
	return nil
}

// node finds a stored node by id, unique id prefix or name.
func (c *Core) node(want string) (*ccv1.Node, error) {
	nodes, err := c.FSM.Nodes()
	if err != nil {
		return nil, err
	}
	return FindNode(nodes, want)
}

// FindNode finds a node by id, unique id prefix or name.
func FindNode(nodes []*ccv1.Node, want string) (*ccv1.Node, error) {
	var prefix []*ccv1.Node
	for _, n := range nodes {
		if n.Id == want || n.Name == want {
			return n, nil
		}
		if len(want) >= 4 && strings.HasPrefix(n.Id, want) {
			prefix = append(prefix, n)
		}
	}
	switch len(prefix) {
	case 1:
		return prefix[0], nil
	case 0:
		return nil, status.Errorf(codes.NotFound, "no node %q (see `ccctl node ls`)", want)
	default:
		return nil, status.Errorf(codes.InvalidArgument, "%q matches %d nodes: give more of the id", want, len(prefix))
	}
}

// WatchNodes implements NodeService: the nodes (or one), then each change
// of a node's record or of what is placed on it.
func (s *NodeService) WatchNodes(req *ccv1.WatchNodesRequest, stream ccv1.NodeService_WatchNodesServer) error {
	want := ""
	if req.GetId() != "" {
		n, err := s.core.node(req.GetId())
		if err != nil {
			return err
		}
		want = n.Id
	}
	read := func(ids []string) (map[string]*ccv1.Node, []string, error) {
		return readEach(ids, func(id string) (*ccv1.Node, error) {
			n, err := s.core.FSM.Node(id)
			if err == nil {
				err = s.view(n)
			}
			return n, err
		})
	}
	return runWatch(stream.Context(), s.core.FSM, stream, watchSource[*ccv1.Node]{
		all: func() (map[string]*ccv1.Node, error) {
			if want != "" {
				put, _, err := read([]string{want})
				return put, err
			}
			nodes, err := s.core.FSM.Nodes()
			if err != nil {
				return nil, err
			}
			out := make(map[string]*ccv1.Node, len(nodes))
			for _, n := range nodes {
				if err := s.view(n); err != nil {
					return nil, err
				}
				out[n.Id] = n
			}
			return out, nil
		},
		changed: func(ch fsm.Changes) (map[string]*ccv1.Node, []string, error) {
			return read(changedIDs(ch.Nodes, want))
		},
		send: func(ev ccv1.WatchEvent, id string, n *ccv1.Node) error {
			return stream.Send(&ccv1.WatchNodesResponse{Event: ev, Id: id, Node: n})
		},
	})
}
