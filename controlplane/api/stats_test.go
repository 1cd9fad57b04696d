package api_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// statsCalls counts the fake agents' stats answers: each answer's CPU time
// is a tenth of a second more than the last, so CPU % is above zero.
var statsCalls atomic.Int64

// answerStats answers a stats request as an agent does, with figures that
// grow from one request to the next.
func (a *fakeAgent) answerStats(ctx context.Context, r *ccv1.StatsRequest) {
	n := statsCalls.Add(1)
	resp := &ccv1.SendStatsRequest{RequestId: r.RequestId}
	for _, id := range r.ContainerIds {
		resp.Stats = append(resp.Stats, &ccv1.ContainerStats{
			Id: id, ReadAt: timestamppb.Now(), CpuNanos: n * int64(100*time.Millisecond),
			MemoryUsageBytes: 1 << 20, MemoryLimitBytes: 64 << 20, Pids: 1,
		})
	}
	_, _ = a.client.SendStats(ctx, resp)
}

func recvStats(t *testing.T, c ccv1.StatsServiceClient, names ...string) (*ccv1.ContainerStatsResponse, error) {
	t.Helper()
	st, err := c.ContainerStats(ctxT(t), &ccv1.ContainerStatsRequest{Containers: names, NoStream: true})
	if err != nil {
		return nil, err
	}
	frame, err := st.Recv()
	if err != nil {
		return nil, err
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("no_stream sent more than one frame (%v)", err)
	}
	return frame, nil
}

// A job attempt's figures follow the logs' rule: its job's owner and admins
// read them, a viewer does not, neither by name nor in the list of all.
func TestContainerStatsOfJobAttempt(t *testing.T) {
	h := newJobHarness(t)
	_, owner := h.token(ccv1.Role_ROLE_ADMIN)
	_, v := h.token(ccv1.Role_ROLE_VIEWER)
	nodeID, _, _ := h.node("n1")
	job := submit(t, h.jobsAs(owner), &ccv1.JobSpec{Image: "busybox"}).Job
	cid := "c-" + job.Id
	h.start(job.Id, nodeID, cid, 1)
	h.report(nodeID, cid, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.Now()})

	viewer := ccv1.NewStatsServiceClient(h.srv.Conn(v))
	_, err := recvStats(t, viewer, cid)
	wantCode(t, err, codes.PermissionDenied, "read the stats of")
	frame, err := recvStats(t, viewer)
	if err != nil {
		t.Fatal(err)
	}
	if len(frame.Stats) != 0 {
		t.Fatalf("the viewer sees %v", frame.Stats)
	}

	for name, bearer := range map[string]string{"owner": owner, "admin": ""} {
		c := ccv1.NewStatsServiceClient(h.srv.Conn(bearer))
		for _, names := range [][]string{{cid}, nil} {
			frame, err := recvStats(t, c, names...)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(frame.Stats) != 1 {
				t.Fatalf("%s asked for %v: %v", name, names, frame.Stats)
			}
			r := frame.Stats[0]
			if r.Id != cid || r.NodeId != nodeID || r.JobId != job.Id || r.Error != "" || r.MemoryUsageBytes != 1<<20 || r.CpuPercent <= 0 {
				t.Errorf("%s: row %v", name, r)
			}
		}
	}
	_, err = recvStats(t, ccv1.NewStatsServiceClient(h.srv.Conn("")), "nosuchcontainer")
	wantCode(t, err, codes.NotFound, "")
}
