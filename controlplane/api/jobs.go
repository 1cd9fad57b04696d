package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/blobs"
	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/webhook"
	"github.com/containercodes/cc/internal/jobspec"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const (
	// DefaultMaxInputSize is the largest input archive UploadInput takes
	// unless JobService.MaxInputSize says otherwise.
	DefaultMaxInputSize = jobspec.DefaultInputLimitBytes

	// DefaultJobListLimit and MaxJobListLimit size a ListJobs page.
	DefaultJobListLimit = 50
	MaxJobListLimit     = 1000
)

// StreamOpenHeader is gRPC header metadata a streaming handler sends when
// the stream is open but its first message may be long in coming (a watch
// with nothing to report yet). The REST gateway answers the HTTP request's
// headers on it at once, instead of when the first message comes.
const StreamOpenHeader = "cc-stream-open"

// JobService implements cc.v1.JobService: job records through raft, their
// input, output and logs as blobs on a majority of servers.
//
// Admins may do everything. A token of role jobs may submit jobs, read
// every job record and queue, and cancel and read the logs and output of
// the jobs it submitted; viewers may read records and queues. The role
// check is auth's; the owner check is here (and in OutputHandler).
type JobService struct {
	ccv1.UnimplementedJobServiceServer

	// MaxInputSize is the largest input archive UploadInput accepts;
	// NewJobService sets DefaultMaxInputSize.
	MaxInputSize int64

	core   *Core
	blobs  *blobs.Store
	done   <-chan struct{}
	tmpDir string
	log    *slog.Logger
	hooks  webhook.Policy

	// sums are the sha256 of files of output archives, by archive digest
	// and name, so that a range request does not hash the file again.
	sumsMu sync.Mutex
	sums   map[string]string

	// downloads counts the open output downloads of each token.
	maxDownloads int
	dlMu         sync.Mutex
	downloads    map[string]int
}

// JobOptions are what a JobService needs besides the core and the blobs.
type JobOptions struct {
	// Done, once closed, ends the long streams (watches, followed logs):
	// the server is shutting down.
	Done <-chan struct{}
	// TempDir is where earlier versions extracted a file of an output to
	// serve it (files are now streamed from the archive); files left there
	// are removed at start.
	TempDir string
	Logger  *slog.Logger
	// Webhooks is where jobs' completion webhooks may be sent: a job whose
	// webhook_url the policy refuses is refused at submit.
	Webhooks webhook.Policy
	// MaxDownloads is how many output downloads one token may have open
	// at once on this server; 0 is DefaultMaxDownloads.
	MaxDownloads int
}

// DefaultMaxDownloads is the default of JobOptions.MaxDownloads.
const DefaultMaxDownloads = 4

// tempPattern names the service's temporary files.
const tempPattern = "job-output-*"

// NewJobService returns the job API over the core (raft, state, sessions,
// peers) and the replicated blob store, which holds job inputs, outputs
// and logs.
func NewJobService(core *Core, store *blobs.Store, o JobOptions) (*JobService, error) {
	j := &JobService{MaxInputSize: DefaultMaxInputSize, core: core, blobs: store, done: o.Done, tmpDir: o.TempDir, log: o.Logger, hooks: o.Webhooks, maxDownloads: o.MaxDownloads}
	if j.maxDownloads <= 0 {
		j.maxDownloads = DefaultMaxDownloads
	}
	if j.log == nil {
		j.log = core.Log
	}
	if j.done == nil {
		j.done = make(chan struct{})
	}
	if err := prepareTempDir(j.tmpDir, tempPattern); err != nil {
		return nil, fmt.Errorf("job temporary directory: %w", err)
	}
	return j, nil
}

// Register adds the service to a gRPC server.
func (j *JobService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterJobServiceServer(g, j)
}

// caller is the token calling.
func caller(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.TokenID == "" {
		return auth.Principal{}, status.Error(codes.Unauthenticated, auth.ErrUnauthenticated.Error())
	}
	return p, nil
}

// mayTouch refuses a caller who is neither the job's owner nor an admin.
func mayTouch(p auth.Principal, j *ccv1.Job, verb string) error {
	if p.Role == ccv1.Role_ROLE_ADMIN || (p.TokenID != "" && p.TokenID == j.OwnerTokenId) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "job %s was submitted by token %s: only that token or an admin token may %s it (this is token %s, role %s)",
		j.Id, j.OwnerTokenId, verb, p.TokenID, auth.RoleName(p.Role))
}

// mayMount refuses an input that the caller's token did not upload: the
// digest of someone else's input is no key to its content. Admins may use
// any stored blob.
func mayMount(f *fsm.FSM, p auth.Principal, digest string) error {
	if p.Role == ccv1.Role_ROLE_ADMIN {
		return nil
	}
	in, err := f.Input(digest)
	if err == nil && slices.Contains(in.Owners, p.TokenID) {
		return nil
	}
	if err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return err
	}
	return status.Errorf(codes.PermissionDenied, "input_digest %s was not uploaded with this token (%s): upload it with this token (UploadInput, or `ccctl job submit --input PATH`)", digest, p.TokenID)
}

// publicJob is a job as reads return it to the caller of ctx: never with a
// webhook secret; and, to a jobs token reading another token's job,
// without its env values, input and webhook URL, which may hold secrets
// (admins and viewers, who see the whole cluster, see them).
func publicJob(ctx context.Context, j *ccv1.Job) *ccv1.Job {
	p, _ := auth.FromContext(ctx)
	foreign := p.Role == ccv1.Role_ROLE_JOBS && p.TokenID != j.OwnerTokenId
	if j.GetSpec().GetWebhookSecret() == "" && !foreign {
		return j
	}
	j = proto.Clone(j).(*ccv1.Job)
	if j.Spec == nil {
		return j
	}
	j.Spec.WebhookSecret = ""
	if foreign {
		for i, e := range j.Spec.Env {
			k, _, _ := strings.Cut(e, "=")
			j.Spec.Env[i] = k + "=(hidden)"
		}
		if j.Spec.InputDigest != "" {
			j.Spec.InputDigest = "(hidden)"
		}
		if j.Spec.WebhookUrl != "" {
			j.Spec.WebhookUrl = "(hidden)"
		}
	}
	return j
}

func newJobID() string { return newContainerID() }

// lookup finds a job by id or unique id prefix.
func (j *JobService) lookup(want string) (*statev1.JobRecord, error) {
	if want == "" {
		return nil, status.Error(codes.InvalidArgument, "job id: required (see `ccctl job ls`)")
	}
	if rec, err := j.core.FSM.Job(want); err == nil {
		return rec, nil
	} else if !errors.Is(err, fsm.ErrNotFound) {
		return nil, err
	}
	const show = 5
	ids, err := j.core.FSM.JobIDsWithPrefix(want, show+1)
	if err != nil {
		return nil, err
	}
	switch len(ids) {
	case 0:
		return nil, status.Errorf(codes.NotFound, "no job %q (see `ccctl job ls`; a finished job is deleted when its output expires)", want)
	case 1:
		return j.core.FSM.Job(ids[0])
	}
	list := strings.Join(ids[:min(len(ids), show)], ", ")
	if len(ids) > show {
		list += ", …"
	}
	return nil, status.Errorf(codes.InvalidArgument, "%q is the start of several job ids (%s): give more of the id", want, list)
}

// find is lookup that, when the job is not found here, catches up with the
// leader and looks again: it may have been submitted through another
// server a moment ago.
func (j *JobService) find(ctx context.Context, want string) (*statev1.JobRecord, error) {
	rec, err := j.lookup(want)
	if status.Code(err) != codes.NotFound {
		return rec, err
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	berr := j.core.Raft.Barrier(bctx)
	cancel()
	if berr != nil {
		return nil, err
	}
	return j.lookup(want)
}

// checkQuotas refuses a new job of owner that its quotas (cluster
// settings) do not allow, with ResourceExhausted naming the quota, the use
// and how to raise it. A resubmission with the idempotency key of a job
// it has is not a new job. The state machine checks again when it applies
// the job, so that servers racing cannot together go over.
func (j *JobService) checkQuotas(owner, idempotencyKey string) error {
	st, err := j.core.FSM.Settings()
	if err != nil {
		return err
	}
	q := st.GetQuotas()
	if q.GetJobsPerToken() <= 0 && q.GetOutputBytesPerToken() <= 0 {
		return nil
	}
	if idempotencyKey != "" {
		if _, err := j.core.FSM.JobIDByKey(owner, idempotencyKey); err == nil {
			return nil
		}
	}
	use, err := j.core.FSM.QuotaUse(owner)
	if err != nil {
		return err
	}
	if err := fsm.QuotaError(q, owner, use); err != nil {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return nil
}

// SubmitJob implements JobService.
func (j *JobService) SubmitJob(ctx context.Context, req *ccv1.SubmitJobRequest) (*ccv1.SubmitJobResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := j.core.Disk.Check(); err != nil {
		return nil, err
	}
	caps, err := j.core.caps(true)
	if err != nil {
		return nil, err
	}
	spec, err := jobspec.Normalize(req.GetSpec(), caps)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if u := spec.WebhookUrl; u != "" {
		if err := j.hooks.CheckURL(ctx, u); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "webhook_url %q: %v", u, err)
		}
	}
	if p.Role != ccv1.Role_ROLE_ADMIN {
		// Without a user namespace, root in the sandbox is root on the
		// host.
		if err := jobspec.RefuseRoot(spec); err != nil {
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
		if err := j.mayUseNetwork(spec); err != nil {
			return nil, err
		}
	}
	if err := j.checkQuotas(p.TokenID, spec.IdempotencyKey); err != nil {
		return nil, err
	}
	if d := spec.InputDigest; d != "" {
		err := j.blobs.Has(ctx, d)
		if errors.Is(err, blobstore.ErrNotFound) {
			return nil, status.Errorf(codes.InvalidArgument, "input_digest %s: no server holds that upload; upload the input first (UploadInput, or `ccctl job submit --input PATH`)", d)
		}
		if err != nil {
			return nil, err
		}
		if err := mayMount(j.core.FSM, p, d); err != nil {
			return nil, err
		}
	}
	rec := &statev1.JobRecord{Job: &ccv1.Job{Id: newJobID(), Spec: spec, OwnerTokenId: p.TokenID}}
	var generated string
	if spec.WebhookUrl != "" {
		rec.WebhookSecret = spec.WebhookSecret
		if rec.WebhookSecret == "" {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			generated = hex.EncodeToString(b)
			rec.WebhookSecret = generated
		}
	}
	spec.WebhookSecret = ""
	if img, err := j.core.ResolveImage(spec.Image); err == nil {
		rec.ImageDigest = img.Digest
	}
	if err := j.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_SUBMIT_JOB, &statev1.SubmitJob{Job: rec}); err != nil {
		return nil, err
	}
	id := rec.Job.Id
	if key := spec.IdempotencyKey; key != "" {
		got, err := j.core.FSM.JobIDByKey(p.TokenID, key)
		if err != nil {
			return nil, err
		}
		if got != id {
			prev, err := j.core.FSM.Job(got)
			if err != nil {
				return nil, err
			}
			return &ccv1.SubmitJobResponse{Job: publicJob(ctx, prev.Job), Existing: true}, nil
		}
	}
	stored, err := j.core.FSM.Job(id)
	if err != nil {
		return nil, err
	}
	j.log.InfoContext(ctx, "job submitted", "job_id", id, "image", spec.Image, "queue", spec.Queue, "owner", p.TokenID)
	return &ccv1.SubmitJobResponse{Job: publicJob(ctx, stored.Job), WebhookSecret: generated}, nil
}

// ListJobs implements JobService: newest first, a page at a time. A state
// filter reads the state index (a range scan, however many jobs there
// are); queue and label filters are checked job by job.
func (j *JobService) ListJobs(ctx context.Context, req *ccv1.ListJobsRequest) (*ccv1.ListJobsResponse, error) {
	flt := fsm.JobFilter{State: req.GetState(), Queue: req.GetQueue()}
	if _, ok := ccv1.JobState_name[int32(flt.State)]; !ok {
		return nil, status.Errorf(codes.InvalidArgument, "state %d: not a job state (queued, assigned, running, succeeded, failed, timed_out, cancelled)", flt.State)
	}
	if flt.Queue != "" {
		if err := jobspec.ValidQueueName(flt.Queue); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	for _, l := range req.GetLabel() {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, status.Errorf(codes.InvalidArgument, "label %q: use KEY=VALUE", l)
		}
		if flt.Labels == nil {
			flt.Labels = map[string]string{}
		}
		flt.Labels[k] = v
	}
	limit := int(req.GetLimit())
	switch {
	case limit < 0:
		return nil, status.Errorf(codes.InvalidArgument, "limit %d: must not be negative (0: %d)", limit, DefaultJobListLimit)
	case limit == 0:
		limit = DefaultJobListLimit
	case limit > MaxJobListLimit:
		limit = MaxJobListLimit
	}
	before, err := parsePageToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	jobs, next, err := j.core.FSM.ListJobs(flt, limit, before)
	if err != nil {
		return nil, err
	}
	resp := &ccv1.ListJobsResponse{Jobs: make([]*ccv1.Job, 0, len(jobs))}
	for _, job := range jobs {
		resp.Jobs = append(resp.Jobs, publicJob(ctx, job))
	}
	if next != 0 {
		resp.NextPageToken = pageToken(next)
	}
	return resp, nil
}

// A page token is the seq to continue below, opaque to clients.
const pageTokenPrefix = "jobs1."

func pageToken(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatUint(seq, 10)))
}

func parsePageToken(tok string) (uint64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if n, ok := strings.CutPrefix(string(b), pageTokenPrefix); ok {
			if seq, err := strconv.ParseUint(n, 10, 64); err == nil && seq > 0 {
				return seq, nil
			}
		}
	}
	return 0, status.Errorf(codes.InvalidArgument, "page_token %q: not a token a ListJobs answer gave (next_page_token); leave it empty for the first page", tok)
}

// GetJob implements JobService.
func (j *JobService) GetJob(ctx context.Context, req *ccv1.GetJobRequest) (*ccv1.GetJobResponse, error) {
	rec, err := j.find(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &ccv1.GetJobResponse{Job: publicJob(ctx, rec.Job)}, nil
}

// CancelJob implements JobService: the job's owner or an admin.
func (j *JobService) CancelJob(ctx context.Context, req *ccv1.CancelJobRequest) (*ccv1.CancelJobResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := j.find(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if err := mayTouch(p, rec.Job, "cancel"); err != nil {
		return nil, err
	}
	id := rec.Job.Id
	if !fsm.JobFinished(rec.Job.State) {
		if err := j.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CANCEL_JOB, &statev1.CancelJob{Id: id}); err != nil {
			return nil, err
		}
		j.log.Info("job cancel", "job_id", id, "by", p.TokenID)
	}
	rec, err = j.core.FSM.Job(id)
	if err != nil {
		return nil, err
	}
	return &ccv1.CancelJobResponse{Job: publicJob(ctx, rec.Job)}, nil
}

// mayUseNetwork refuses a job with network from a non-admin token unless
// its queue allows network (ccctl queue set NAME --allow-network): a job on
// the network reaches the internet from the node.
func (j *JobService) mayUseNetwork(spec *ccv1.JobSpec) error {
	if !spec.GetNetwork() {
		return nil
	}
	q, err := j.core.FSM.Queue(spec.GetQueue())
	if err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return err
	}
	if q.GetAllowNetwork() {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "network: queue %q does not allow jobs with network for jobs tokens; submit without --network, to a queue that allows it, or have an admin allow it (ccctl queue set %s --max-running N --allow-network)", spec.GetQueue(), spec.GetQueue())
}

// SetQueue implements JobService (admin only, by auth). Without
// allow_network the queue keeps its setting.
func (j *JobService) SetQueue(ctx context.Context, req *ccv1.SetQueueRequest) (*ccv1.SetQueueResponse, error) {
	if err := jobspec.ValidQueueName(req.GetName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	q := &statev1.QueueRecord{Name: req.GetName(), MaxRunning: req.GetMaxRunning()}
	if req.AllowNetwork != nil {
		q.AllowNetwork = req.GetAllowNetwork()
	} else {
		old, err := j.core.FSM.Queue(q.Name)
		if err != nil && !errors.Is(err, fsm.ErrNotFound) {
			return nil, err
		}
		q.AllowNetwork = old.GetAllowNetwork()
	}
	if err := j.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_SET_QUEUE, &statev1.SetQueue{Queue: q}); err != nil {
		return nil, err
	}
	qs, err := j.queues()
	if err != nil {
		return nil, err
	}
	for _, out := range qs {
		if out.Name == q.Name {
			return &ccv1.SetQueueResponse{Queue: out}, nil
		}
	}
	return &ccv1.SetQueueResponse{Queue: &ccv1.Queue{Name: q.Name, MaxRunning: q.MaxRunning, AllowNetwork: q.AllowNetwork}}, nil
}

// ListQueues implements JobService: every queue with a record or jobs,
// and the default one, by name.
func (j *JobService) ListQueues(ctx context.Context, _ *ccv1.ListQueuesRequest) (*ccv1.ListQueuesResponse, error) {
	qs, err := j.queues()
	if err != nil {
		return nil, err
	}
	return &ccv1.ListQueuesResponse{Queues: qs}, nil
}

func (j *JobService) queues() ([]*ccv1.Queue, error) {
	st, err := j.core.FSM.ReadDispatch(-1)
	if err != nil {
		return nil, err
	}
	if st.Queues[jobspec.DefaultQueue] == nil {
		st.Queues[jobspec.DefaultQueue] = &fsm.QueueInfo{Name: jobspec.DefaultQueue}
	}
	out := make([]*ccv1.Queue, 0, len(st.Queues))
	for _, q := range st.Queues {
		out = append(out, &ccv1.Queue{Name: q.Name, MaxRunning: q.MaxRunning, AllowNetwork: q.AllowNetwork, Queued: q.Queued, Running: q.Running})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// WatchJobs implements JobService. With ids, it sends those jobs' current
// state, then each change; without, the current state of every queued,
// assigned or running job, then every change of any job. With until_done
// it ends once every watched job has ended (without ids: once no job is
// queued, assigned or running).
func (j *JobService) WatchJobs(req *ccv1.WatchJobsRequest, stream ccv1.JobService_WatchJobsServer) error {
	ctx := stream.Context()
	// Changes after this index are sent below, so none is missed between
	// the reads of the current state and the first wait.
	since := j.core.FSM.AppliedIndex()
	watched := map[string]bool{} // id → finished
	var initial []*ccv1.Job
	for _, want := range req.GetIds() {
		rec, err := j.find(ctx, want)
		if err != nil {
			return err
		}
		if _, dup := watched[rec.Job.Id]; dup {
			continue
		}
		watched[rec.Job.Id] = fsm.JobFinished(rec.Job.State)
		initial = append(initial, rec.Job)
	}
	all := len(req.GetIds()) == 0
	if all {
		for _, st := range []ccv1.JobState{ccv1.JobState_JOB_STATE_QUEUED, ccv1.JobState_JOB_STATE_ASSIGNED, ccv1.JobState_JOB_STATE_RUNNING} {
			var before uint64
			for {
				page, next, err := j.core.FSM.ListJobs(fsm.JobFilter{State: st}, MaxJobListLimit, before)
				if err != nil {
					return err
				}
				initial = append(initial, page...)
				if next == 0 {
					break
				}
				before = next
			}
		}
	}
	// The stream is open: a REST client gets its headers now, not with the
	// first change.
	if err := stream.SendHeader(metadata.Pairs(StreamOpenHeader, "true")); err != nil {
		return err
	}
	for _, job := range initial {
		if err := stream.Send(&ccv1.WatchJobsResponse{Job: publicJob(ctx, job)}); err != nil {
			return err
		}
	}
	done := func() (bool, error) {
		if !req.GetUntilDone() {
			return false, nil
		}
		if !all {
			for _, fin := range watched {
				if !fin {
					return false, nil
				}
			}
			return true, nil
		}
		for _, st := range []ccv1.JobState{ccv1.JobState_JOB_STATE_QUEUED, ccv1.JobState_JOB_STATE_ASSIGNED, ccv1.JobState_JOB_STATE_RUNNING} {
			page, _, err := j.core.FSM.ListJobs(fsm.JobFilter{State: st}, 1, 0)
			if err != nil || len(page) > 0 {
				return false, err
			}
		}
		return true, nil
	}
	for {
		w := j.core.FSM.JobsWatch()
		changed, idx, err := j.core.FSM.JobChanges(since)
		if err != nil {
			return err
		}
		since = max(since, idx)
		for _, job := range changed {
			if !all {
				if _, ok := watched[job.Id]; !ok {
					continue
				}
				watched[job.Id] = fsm.JobFinished(job.State)
			}
			if err := stream.Send(&ccv1.WatchJobsResponse{Job: publicJob(ctx, job)}); err != nil {
				return err
			}
		}
		if fin, err := done(); err != nil || fin {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-j.done:
			return status.Error(codes.Unavailable, "the server is shutting down; watch again")
		case <-w:
		}
	}
}

// watchQueuesEvery is the least time between two reads of the queues by a
// WatchQueues stream (longer when a read took longer).
const watchQueuesEvery = 500 * time.Millisecond

// WatchQueues implements JobService: the queues as ListQueues has them,
// then the list again after a change of the state that changed it.
func (j *JobService) WatchQueues(_ *ccv1.WatchQueuesRequest, stream ccv1.JobService_WatchQueuesServer) error {
	return sendWhenChanged(stream.Context(), stream, watchQueuesEvery, j.core.FSM.Watch,
		func() (*ccv1.WatchQueuesResponse, error) {
			qs, err := j.queues()
			return &ccv1.WatchQueuesResponse{Queues: qs}, err
		}, stream.Send)
}
