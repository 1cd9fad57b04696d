package api

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/auth"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Volume and mount bounds.
const (
	// DefaultVolumeSize is a volume's size when the request gives none.
	DefaultVolumeSize = 1 << 30
	// MinVolumeSize is the smallest volume: an ext4 filesystem needs room
	// for its journal and metadata.
	MinVolumeSize = 8 << 20
	// MaxVolumeSize bounds one volume.
	MaxVolumeSize = 16 << 40
	// MaxTmpfsSize bounds one tmpfs mount (its pages are memory).
	MaxTmpfsSize = 4 << 30
	// MaxMounts bounds the mounts of one container.
	MaxMounts = 32
)

// Mount types.
const (
	MountVolume = "volume"
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
)

var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// VolumeService implements ccv1.VolumeServiceServer.
type VolumeService struct {
	ccv1.UnimplementedVolumeServiceServer
	core *Core
}

// NewVolumeService returns the volume API over the core.
func NewVolumeService(core *Core) *VolumeService { return &VolumeService{core: core} }

// Register adds the service to g.
func (s *VolumeService) Register(g grpc.ServiceRegistrar) { ccv1.RegisterVolumeServiceServer(g, s) }

// CreateVolume records a volume on the node asked for or on one the
// scheduler picks (ready, active, the fewest tasks).
func (s *VolumeService) CreateVolume(ctx context.Context, req *ccv1.CreateVolumeRequest) (*ccv1.CreateVolumeResponse, error) {
	name := req.GetName()
	if !volumeNameRE.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument, "volume name %q: use letters, digits, '_', '.' or '-' (at most 64), starting with a letter or digit", name)
	}
	size := req.GetSizeBytes()
	if size == 0 {
		size = DefaultVolumeSize
	}
	if size < MinVolumeSize || size > MaxVolumeSize {
		return nil, status.Errorf(codes.InvalidArgument, "size: between 8m and 16t (an ext4 filesystem needs a few MiB of its own)")
	}
	nodes, err := s.core.FSM.Nodes()
	if err != nil {
		return nil, err
	}
	var node *ccv1.Node
	if want := req.GetNode(); want != "" {
		if node, err = FindNode(nodes, want); err != nil {
			return nil, err
		}
	} else {
		containers, err := s.core.FSM.Containers()
		if err != nil {
			return nil, err
		}
		if node, err = Place(nodes, containers, "", &ccv1.ContainerSpec{}); err != nil {
			return nil, err
		}
	}
	v := &ccv1.Volume{Name: name, NodeId: node.Id, SizeBytes: size}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CREATE_VOLUME, &statev1.CreateVolume{Volume: v}); err != nil {
		return nil, err
	}
	out, err := s.get(name)
	if err != nil {
		return nil, err
	}
	return &ccv1.CreateVolumeResponse{Volume: out}, nil
}

// ListVolumes lists every volume.
func (s *VolumeService) ListVolumes(context.Context, *ccv1.ListVolumesRequest) (*ccv1.ListVolumesResponse, error) {
	vs, err := s.core.FSM.Volumes()
	if err != nil {
		return nil, err
	}
	names := s.nodeNames()
	for _, v := range vs {
		v.NodeName = names[v.NodeId]
	}
	return &ccv1.ListVolumesResponse{Volumes: vs}, nil
}

// GetVolume returns one volume by name.
func (s *VolumeService) GetVolume(_ context.Context, req *ccv1.GetVolumeRequest) (*ccv1.GetVolumeResponse, error) {
	v, err := s.get(req.GetName())
	if err != nil {
		return nil, err
	}
	return &ccv1.GetVolumeResponse{Volume: v}, nil
}

// RemoveVolume removes a volume that nothing mounts; the agent of its node
// deletes the data when the volume is no longer in its list.
func (s *VolumeService) RemoveVolume(ctx context.Context, req *ccv1.RemoveVolumeRequest) (*ccv1.RemoveVolumeResponse, error) {
	if _, err := s.core.FSM.Volume(req.GetName()); err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_VOLUME, &statev1.RemoveVolume{Name: req.GetName()}); err != nil {
		return nil, err
	}
	return &ccv1.RemoveVolumeResponse{}, nil
}

func (s *VolumeService) get(name string) (*ccv1.Volume, error) {
	v, err := s.core.FSM.Volume(name)
	if err != nil {
		return nil, err
	}
	v.NodeName = s.nodeNames()[v.NodeId]
	return v, nil
}

func (s *VolumeService) nodeNames() map[string]string {
	out := map[string]string{}
	nodes, _ := s.core.FSM.Nodes()
	for _, n := range nodes {
		out[n.Id] = n.Name
	}
	return out
}

// resolveMounts checks a spec's mounts and fills in each volume's node and
// size from its record. Bind mounts are for admin tokens only (the agent
// also keeps them under the prefixes its configuration allows).
func (c *Core) resolveMounts(ctx context.Context, spec *ccv1.ContainerSpec) error {
	if len(spec.GetMounts()) == 0 {
		return nil
	}
	if len(spec.Mounts) > MaxMounts {
		return status.Errorf(codes.InvalidArgument, "mounts: at most %d", MaxMounts)
	}
	var probs []string
	targets := map[string]bool{}
	node := ""
	for _, m := range spec.Mounts {
		m.VolumeNodeId, m.VolumeSizeBytes = "", 0
		what := fmt.Sprintf("mount %s", shorten(m.Target))
		if !path.IsAbs(m.Target) || path.Clean(m.Target) != m.Target || m.Target == "/" {
			probs = append(probs, fmt.Sprintf("%s: the target is a clean absolute path other than /", what))
		} else if targets[m.Target] {
			probs = append(probs, fmt.Sprintf("%s: mounted twice", what))
		}
		targets[m.Target] = true
		if m.Type != MountTmpfs && m.TmpfsSizeBytes != 0 {
			probs = append(probs, fmt.Sprintf("%s: tmpfs-size is for tmpfs mounts only", what))
		}
		switch m.Type {
		case MountVolume:
			v, err := c.FSM.Volume(m.Source)
			if err != nil {
				probs = append(probs, fmt.Sprintf("%s: volume %q does not exist: create it with `ccctl volume create %s`", what, shorten(m.Source), shorten(m.Source)))
				continue
			}
			if node != "" && v.NodeId != node {
				probs = append(probs, fmt.Sprintf("%s: volume %q is on another node than the container's other volumes: a container mounts volumes of one node only", what, v.Name))
			}
			node = v.NodeId
			m.VolumeNodeId, m.VolumeSizeBytes = v.NodeId, v.SizeBytes
		case MountBind:
			if p, _ := auth.FromContext(ctx); p.Role != ccv1.Role_ROLE_ADMIN {
				return status.Error(codes.PermissionDenied, "bind mounts of host paths need an admin token")
			}
			if !path.IsAbs(m.Source) || path.Clean(m.Source) != m.Source {
				probs = append(probs, fmt.Sprintf("%s: the source of a bind mount is a clean absolute host path", what))
			}
		case MountTmpfs:
			if m.Source != "" {
				probs = append(probs, fmt.Sprintf("%s: a tmpfs mount has no source", what))
			}
			if m.TmpfsSizeBytes <= 0 || m.TmpfsSizeBytes > MaxTmpfsSize {
				probs = append(probs, fmt.Sprintf("%s: a tmpfs mount needs tmpfs-size, at most 4g", what))
			}
		default:
			probs = append(probs, fmt.Sprintf("%s: type %q: use volume, bind or tmpfs", what, shorten(m.Type)))
		}
	}
	if len(probs) > 0 {
		return status.Error(codes.InvalidArgument, strings.Join(probs, "; "))
	}
	return nil
}

// volumeNodeOf returns the node the spec's volumes live on, or "".
func volumeNodeOf(spec *ccv1.ContainerSpec) string {
	for _, m := range spec.GetMounts() {
		if m.Type == MountVolume {
			return m.VolumeNodeId
		}
	}
	return ""
}
