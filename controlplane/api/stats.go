package api

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/auth"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// DefaultStatsInterval is how often ContainerStats sends a frame.
const DefaultStatsInterval = time.Second

// statsPrime is the wait between the first two samples: CPU use is a rate,
// so the first frame needs two.
const statsPrime = 500 * time.Millisecond

// statsNodeTimeout bounds one node's answer to one sample.
const statsNodeTimeout = 5 * time.Second

// StatsService implements cc.v1.StatsService: containers' resource use,
// sampled by their nodes' agents.
type StatsService struct {
	ccv1.UnimplementedStatsServiceServer
	core *Core
	// Interval is how often a streamed request gets a frame.
	Interval time.Duration
}

// NewStatsService returns the stats API.
func NewStatsService(core *Core) *StatsService {
	return &StatsService{core: core, Interval: DefaultStatsInterval}
}

// Register adds the service to a gRPC server.
func (s *StatsService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterStatsServiceServer(g, s)
}

// ContainerStats implements StatsService. Named containers must exist and
// be readable by the caller (a job attempt is its job owner's or an
// admin's, as for logs); with none named, every running container the
// caller may read is sampled, and the set is listed again for each frame.
func (s *StatsService) ContainerStats(req *ccv1.ContainerStatsRequest, stream ccv1.StatsService_ContainerStatsServer) error {
	ctx := stream.Context()
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	cs := &ContainerService{core: s.core}
	var named []*ccv1.Container
	for _, want := range req.GetContainers() {
		rec, err := cs.findContainer(want)
		if err != nil {
			return err
		}
		if err := s.mayRead(p, rec.Container); err != nil {
			return err
		}
		named = append(named, rec.Container)
	}
	targets := func() ([]*ccv1.Container, error) {
		if len(req.GetContainers()) > 0 {
			// Fresh records: the node and state may have changed.
			out := make([]*ccv1.Container, 0, len(named))
			for _, c := range named {
				rec, err := s.core.FSM.Container(c.Id)
				if err != nil {
					out = append(out, c)
					continue
				}
				out = append(out, rec.Container)
			}
			return out, nil
		}
		all, err := s.core.FSM.Containers()
		if err != nil {
			return nil, err
		}
		var out []*ccv1.Container
		for _, r := range all {
			c := r.Container
			if c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING || c.GetStatus().GetState() != ccv1.ContainerState_CONTAINER_STATE_RUNNING || c.NodeId == "" {
				continue
			}
			if s.mayRead(p, c) != nil {
				continue
			}
			out = append(out, c)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out, nil
	}
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultStatsInterval
	}
	prev := map[string]*ccv1.ContainerStats{}
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	for frame := 0; ; frame++ {
		list, err := targets()
		if err != nil {
			return err
		}
		rows := s.sample(ctx, list)
		if frame == 0 {
			// Prime: one sample to measure the next one's CPU use from.
			for _, r := range rows {
				prev[r.Id] = r
			}
			if err := wait(statsPrime); err != nil {
				return err
			}
			continue
		}
		for _, r := range rows {
			r.CpuPercent = cpuPercent(prev[r.Id], r)
		}
		prev = map[string]*ccv1.ContainerStats{}
		for _, r := range rows {
			prev[r.Id] = r
		}
		if err := stream.Send(&ccv1.ContainerStatsResponse{Stats: rows}); err != nil {
			return err
		}
		if req.GetNoStream() {
			return nil
		}
		if err := wait(interval); err != nil {
			return err
		}
	}
}

// mayRead applies ContainerLogs' rule (mayReadAttemptOf): a job
// attempt's figures are its job owner's or an admin's; other containers
// are anyone's to read.
func (s *StatsService) mayRead(p auth.Principal, c *ccv1.Container) error {
	return mayReadAttemptOf(s.core.FSM, p, c, "stats")
}

// cpuPercent is the CPU used between two samples of a container, 100 for
// one core.
func cpuPercent(before, after *ccv1.ContainerStats) float64 {
	if before == nil || after == nil || before.Error != "" || after.Error != "" || after.CpuNanos < before.CpuNanos {
		return 0
	}
	wall := after.GetReadAt().AsTime().Sub(before.GetReadAt().AsTime())
	if wall <= 0 {
		return 0
	}
	return float64(after.CpuNanos-before.CpuNanos) / float64(wall.Nanoseconds()) * 100
}

// sample asks every node concerned, at once, for its containers' figures:
// one row per container, in the order given, with error set where there
// are none.
func (s *StatsService) sample(ctx context.Context, list []*ccv1.Container) []*ccv1.ContainerStats {
	rows := make([]*ccv1.ContainerStats, len(list))
	byNode := map[string][]int{}
	for i, c := range list {
		rows[i] = &ccv1.ContainerStats{Id: c.Id, Name: c.Name, NodeId: c.NodeId, JobId: containerJobID(c)}
		switch {
		case c.NodeId == "":
			rows[i].Error = "not placed on a node yet"
		case c.GetStatus().GetState() != ccv1.ContainerState_CONTAINER_STATE_RUNNING:
			rows[i].Error = "not running"
		default:
			byNode[c.NodeId] = append(byNode[c.NodeId], i)
		}
	}
	var wg sync.WaitGroup
	for node, idx := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, len(idx))
			for k, i := range idx {
				ids[k] = list[i].Id
			}
			nctx, cancel := context.WithTimeout(ctx, statsNodeTimeout)
			defer cancel()
			got, err := s.core.nodeStats(nctx, node, ids)
			byID := map[string]*ccv1.ContainerStats{}
			for _, g := range got {
				byID[g.Id] = g
			}
			for _, i := range idx {
				r := rows[i]
				g := byID[r.Id]
				switch {
				case err != nil && (errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded) && ctx.Err() == nil:
					r.Error = fmt.Sprintf("node %s did not answer within %s (an agent older than the servers does not report stats)", node, statsNodeTimeout)
				case err != nil:
					r.Error = status.Convert(err).Message()
				case g == nil:
					r.Error = "node " + node + " did not report it"
				default:
					g = proto.Clone(g).(*ccv1.ContainerStats)
					g.Id, g.Name, g.NodeId, g.JobId = r.Id, r.Name, r.NodeId, r.JobId
					rows[i] = g
				}
			}
		}()
	}
	wg.Wait()
	return rows
}

// nodeStats samples containers on a node, through the server that holds
// its session when that is not this one.
func (c *Core) nodeStats(ctx context.Context, nodeID string, ids []string) ([]*ccv1.ContainerStats, error) {
	if c.Sessions.Connected(nodeID) || c.Peers == nil {
		return c.Sessions.Stats(ctx, nodeID, ids)
	}
	st, err := c.Raft.Status()
	if err != nil {
		return nil, err
	}
	for _, srv := range st.Servers {
		if srv.ID == st.ID {
			continue
		}
		resp, err := c.Peers.RelayStats(ctx, srv.ID, &ccv1.RelayStatsRequest{NodeId: nodeID, ContainerIds: ids})
		if status.Code(err) == codes.FailedPrecondition {
			continue // not this server
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			continue
		}
		return resp.GetStats(), nil
	}
	return nil, status.Errorf(codes.Unavailable, "node %s is not connected to any server now, so its stats cannot be read", nodeID)
}
