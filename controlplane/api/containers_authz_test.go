package api_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func recvContainerLogs(t *testing.T, c ccv1.ContainerServiceClient, id string) (string, error) {
	t.Helper()
	st, err := c.ContainerLogs(ctxT(t), &ccv1.ContainerLogsRequest{Id: id})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		fmt.Fprintf(&b, "%s:%s|", m.Stream, m.Data)
	}
}

// A job attempt's container logs are the job's logs: ContainerLogs applies
// JobLogs' rule (the job's owner or an admin), so a viewer, who may not
// call JobLogs, does not read them through ContainerLogs either.
func TestContainerLogsOfJobAttemptFollowJobLogsRule(t *testing.T) {
	h := newJobHarness(t)
	_, owner := h.token(ccv1.Role_ROLE_ADMIN)
	_, v := h.token(ccv1.Role_ROLE_VIEWER)
	nodeID, _, fake := h.node("n1")
	fake.setLines("secret 1\n")
	job := submit(t, h.jobsAs(owner), &ccv1.JobSpec{Image: "busybox", Env: []string{"API_KEY=s3cret"}}).Job
	cid := "c-" + job.Id
	h.start(job.Id, nodeID, cid, 1)
	h.report(nodeID, cid, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.Now()})

	viewer := ccv1.NewContainerServiceClient(h.srv.Conn(v))
	// The viewer may not read the job's logs, by either method.
	_, err := recvLogs(t, h.jobsAs(v), &ccv1.JobLogsRequest{Id: job.Id})
	wantCode(t, err, codes.PermissionDenied, "")
	got, err := recvContainerLogs(t, viewer, cid)
	wantCode(t, err, codes.PermissionDenied, "read the logs of")
	if got != "" {
		t.Fatalf("the viewer read %q", got)
	}
	// The container's record stays visible to a viewer, as the job's is
	// (with its env, as GetJob shows a viewer).
	if c, err := viewer.GetContainer(ctxT(t), &ccv1.GetContainerRequest{Id: cid}); err != nil || c.Container.JobId != job.Id {
		t.Fatalf("viewer GetContainer: %v, %v", c, err)
	}

	// The owner and an admin read them.
	for name, bearer := range map[string]string{"owner": owner, "admin": ""} {
		got, err := recvContainerLogs(t, ccv1.NewContainerServiceClient(h.srv.Conn(bearer)), cid)
		if err != nil || got != "stdout:secret 1\n|" {
			t.Fatalf("%s ContainerLogs: %q, %v", name, got, err)
		}
	}
}
