package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/containercodes/cc/bench/internal/benchstat"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// listPage is the page size asked for.
const listPage = 50

// rest gets a ListJobs page over REST.
type rest struct {
	client *http.Client
	base   string
	token  string
}

func (c *rest) list(ctx context.Context, query string) (*ccv1.ListJobsResponse, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/jobs?"+query, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, len(body), fmt.Errorf("GET /v1/jobs?%s: %s: %s", query, resp.Status, strings.TrimSpace(string(body)))
	}
	out := &ccv1.ListJobsResponse{}
	if err := protojson.Unmarshal(body, out); err != nil {
		return nil, len(body), fmt.Errorf("GET /v1/jobs?%s: %w", query, err)
	}
	return out, len(body), nil
}

// checkQueuedPage checks a page of the state=QUEUED listing: full, every
// job queued, newest first, with a next page.
func checkQueuedPage(p *ccv1.ListJobsResponse, want int) error {
	if len(p.Jobs) != want {
		return fmt.Errorf("%d jobs, want %d", len(p.Jobs), want)
	}
	for i, j := range p.Jobs {
		if j.State != ccv1.JobState_JOB_STATE_QUEUED {
			return fmt.Errorf("job %s is %v", j.Id, j.State)
		}
		if i > 0 && j.Seq >= p.Jobs[i-1].Seq {
			return fmt.Errorf("not newest first: seq %d after %d", j.Seq, p.Jobs[i-1].Seq)
		}
	}
	if p.NextPageToken == "" {
		return fmt.Errorf("no next_page_token with a backlog behind the page")
	}
	return nil
}

// listPhase measures ListJobs of queued jobs with the backlog in place,
// over REST and gRPC.
func (b *bench) listPhase(ctx context.Context) error {
	o, r := b.o, b.r
	r.section(fmt.Sprintf("2. list queued jobs with the backlog in place (%d sequential requests each, after 5 not counted)", o.listRequests))
	c := &rest{
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: b.tls, MaxIdleConnsPerHost: 2}},
		base:   "https://" + o.addr,
		token:  o.token,
	}
	defer c.client.CloseIdleConnections()
	query := fmt.Sprintf("state=JOB_STATE_QUEUED&limit=%d", listPage)
	page, size, err := c.list(ctx, query)
	if err != nil {
		return fmt.Errorf("REST (cluster CA as the only root, bearer token): %w", err)
	}
	if err := checkQueuedPage(page, listPage); err != nil {
		return fmt.Errorf("GET /v1/jobs?%s: %w", query, err)
	}
	r.add("REST query checked", "GET /v1/jobs?%s → %d jobs, all JOB_STATE_QUEUED, newest first, %d bytes", query, len(page.Jobs), size)
	// Which spellings of the enum the gateway takes.
	var forms []string
	for _, v := range []string{"JOB_STATE_QUEUED", "1", "queued"} {
		q := fmt.Sprintf("state=%s&limit=%d", url.QueryEscape(v), listPage)
		p, _, err := c.list(ctx, q)
		switch {
		case err != nil:
			forms = append(forms, fmt.Sprintf("state=%s refused", v))
		case checkQueuedPage(p, listPage) != nil:
			forms = append(forms, fmt.Sprintf("state=%s wrong (%v)", v, checkQueuedPage(p, listPage)))
		default:
			forms = append(forms, fmt.Sprintf("state=%s ok", v))
		}
	}
	r.add("REST enum spellings", "%s", strings.Join(forms, ", "))

	restLat, err := measure(ctx, o.listRequests, 5, func() error {
		p, _, err := c.list(ctx, query)
		if err == nil {
			err = checkQueuedPage(p, listPage)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("REST list: %w", err)
	}
	r.add("REST GET /v1/jobs?state=JOB_STATE_QUEUED&limit=50", "%s", restLat.Line())

	grpcLat, err := measure(ctx, o.listRequests, 5, func() error {
		p, err := b.jobs.ListJobs(ctx, &ccv1.ListJobsRequest{State: ccv1.JobState_JOB_STATE_QUEUED, Limit: listPage})
		if err == nil {
			err = checkQueuedPage(p, listPage)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("gRPC ListJobs: %w", err)
	}
	r.add("gRPC ListJobs(state=QUEUED, limit=50)", "%s", grpcLat.Line())

	// The last page: a page token deep in the backlog is a seek too.
	var deepLat benchstat.Dist
	if page.NextPageToken != "" {
		deepLat, err = measure(ctx, min(o.listRequests, 50), 2, func() error {
			_, err := b.jobs.ListJobs(ctx, &ccv1.ListJobsRequest{State: ccv1.JobState_JOB_STATE_QUEUED, Limit: listPage, PageToken: page.NextPageToken})
			return err
		})
		if err != nil {
			return fmt.Errorf("gRPC ListJobs page 2: %w", err)
		}
		r.add("gRPC ListJobs page 2 (page_token)", "%s", deepLat.Line())
	}
	r.sum("with %d queued: REST GET /v1/jobs?state=JOB_STATE_QUEUED&limit=50 %s; gRPC ListJobs %s", b.queued, restLat.Short(), grpcLat.Short())

	// A filter the state index does not cover: queued jobs of another queue,
	// every queued job read to find none.
	if o.scanRequests > 0 {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		var got int
		scan, err := measure(sctx, o.scanRequests, 1, func() error {
			p, err := b.jobs.ListJobs(sctx, &ccv1.ListJobsRequest{State: ccv1.JobState_JOB_STATE_QUEUED, Queue: "default", Limit: listPage})
			if err == nil {
				got = len(p.Jobs)
			}
			return err
		})
		cancel()
		if err != nil {
			r.add("gRPC ListJobs(state=QUEUED, queue=default)", "stopped: %v (after %d requests)", err, len(scan))
		} else {
			r.add("gRPC ListJobs(state=QUEUED, queue=default)", "%s; %d jobs (an empty queue: read through the per-queue index)", scan.Line(), got)
			r.sum("  ListJobs(state=QUEUED, queue=default), none there: %s (the %d queued jobs are in another queue)", scan.Short(), b.queued)
		}
	}

	p := benchstat.ReadProc(o.pid)
	r.add("control plane after the lists", "RSS %s; state.db %s", benchstat.MiB(p.RSS), benchstat.MiB(benchstat.FileSize(filepath.Join(o.dataDir, "state.db"))))
	return nil
}

// measure calls f warm times, then n times, timing each.
func measure(ctx context.Context, n, warm int, f func() error) (benchstat.Dist, error) {
	for i := 0; i < warm; i++ {
		if err := f(); err != nil {
			return nil, err
		}
	}
	d := make(benchstat.Dist, 0, n)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return d, err
		}
		t := time.Now()
		if err := f(); err != nil {
			return d, err
		}
		d = append(d, time.Since(t))
	}
	return d, nil
}
