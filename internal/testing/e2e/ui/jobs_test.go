package uie2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// queuedJobs is how many jobs TestJobsListFirstRows queues: $CC_UI_JOBS,
// else 100,000 (the size the dashboard is specified for), or 2,000 under
// the race detector (make test runs the full size once more without it:
// make ui-e2e-jobs).
func queuedJobs(t *testing.T) int {
	t.Helper()
	if s := os.Getenv("CC_UI_JOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CC_UI_JOBS=%q: give a number of jobs", s)
		}
		return n
	}
	if raceEnabled {
		return 2000
	}
	return 100000
}

// TestJobsListFirstRows queues many jobs (no node: they stay queued), then
// times, in the browser, how long the jobs page takes to show its first
// rows: after a click in the navigation, and after a page load. The
// figures are printed and written to results.txt, not asserted (a busy
// machine is slower); what is asserted is that the list is virtualized
// (a few rows in the DOM) and pages on through the server as it scrolls.
func TestJobsListFirstRows(t *testing.T) {
	requireChromium(t)
	n := queuedJobs(t)
	srv := testcluster.Start(t, func(cfg *testcluster.Config) {
		// The admin token's rate limit (2,000 calls/s) would make the
		// backlog slow to fill; it is not what this test is about.
		cfg.RateLimit.AdminPerSecond = 1e9
		cfg.RateLimit.AdminBurst = 1e9
		cfg.RateLimit.AddressPerSecond = 1e9
		cfg.RateLimit.AddressBurst = 1e9
	})
	if !dashboardBuilt(t, srv) {
		t.Skip("the dashboard is not built into this test binary: run `make ui` first (make test does); skipped")
	}
	took := submitBacklog(t, srv, n)
	record(t, "queued %d jobs in %s (%.0f jobs/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())

	b := browserFor(t, srv)
	p := newTab(t, b, srv.URL(), "jobs")
	p.signIn(srv.Token)
	p.nav("Overview")
	waitQuiet(p)

	// In the app: a click on Jobs until the first row is in the DOM and
	// painted (the next animation frame), measured in the page.
	var clickMs float64
	p.mustEval(`new Promise((resolve, reject) => {
  const link = [...document.querySelectorAll('nav[aria-label="Main"] a')].find((a) => a.textContent.trim() === 'Jobs');
  if (!link) { reject(new Error('no Jobs link')); return; }
  const t0 = performance.now();
  link.click();
  const tick = () => {
    if (document.querySelector('[data-testid="job-row"]')) requestAnimationFrame(() => resolve(performance.now() - t0));
    else if (performance.now() - t0 > 120000) reject(new Error('no job row after 120 s'));
    else requestAnimationFrame(tick);
  };
  tick();
})`, &clickMs)
	checkVirtualized(p, n)

	// A page load of /ui/jobs: from the navigation's start until the first
	// row is painted.
	p.open("/ui/jobs")
	var loadMs float64
	p.mustEval(`new Promise((resolve, reject) => {
  const tick = () => {
    if (document.querySelector('[data-testid="job-row"]')) requestAnimationFrame(() => resolve(performance.now()));
    else if (performance.now() > 120000) reject(new Error('no job row after 120 s'));
    else requestAnimationFrame(tick);
  };
  tick();
})`, &loadMs)
	checkVirtualized(p, n)
	shot := p.screenshot("jobs-" + strconv.Itoa(n))
	record(t, "figure: with %d queued jobs, the jobs page showed its first rows %.0f ms after a click in the navigation and %.0f ms after the start of a page load (headless chromium, this machine%s); screenshot %s",
		n, clickMs, loadMs, map[bool]string{true: ", race detector on", false: ""}[raceEnabled], shot)

	if n <= 150 {
		return
	}
	// Scrolling to the end of the rendered rows fetches the next page.
	p.waitFor("more than one page of rows after scrolling", `(() => {
  const list = document.querySelector('[data-testid="jobs-list"]');
  list.scrollTop = list.scrollHeight;
  return Math.max(0, ...[...document.querySelectorAll('[data-testid="job-row"]')].map((r) => Number(r.getAttribute('aria-rowindex') || 0))) > 102;
})()`, uiTimeout)
	checkVirtualized(p, n)
}

// checkVirtualized fails when the page holds many more job rows than a
// screen shows.
func checkVirtualized(p *tab, queued int) {
	p.t.Helper()
	var rows int
	p.mustEval(`document.querySelectorAll('[data-testid="job-row"]').length`, &rows)
	if rows == 0 || (queued > 500 && rows > 300) {
		p.fail("the jobs page holds %d row elements with %d jobs queued: want a virtualized list (a screenful)", rows, queued)
	}
}

// submitBacklog submits n jobs that stay queued (the cluster has no node)
// from 32 concurrent clients, each with its own connection.
func submitBacklog(t *testing.T, srv *testcluster.Server, n int) time.Duration {
	t.Helper()
	const clients = 32
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for c := 0; c < clients; c++ {
		conn := srv.Conn(srv.Token)
		jobs := ccv1.NewJobServiceClient(conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				spec := &ccv1.JobSpec{Image: e2eImage, Command: []string{"/bin/busybox", "true"}, Labels: map[string]string{"e2e": "backlog", "n": strconv.FormatInt(i, 10)}}
				if _, err := jobs.SubmitJob(ctx, &ccv1.SubmitJobRequest{Spec: spec}); err != nil {
					errs <- fmt.Errorf("submit job %d: %w", i, err)
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return took
}
