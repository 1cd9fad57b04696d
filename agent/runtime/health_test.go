package runtime

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/agent/health"
	"github.com/containercodes/cc/internal/logging"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The health checks of package health, run through the runtime on real
// containers.

// monitor checks the given containers of r, with hc, until the test ends.
func monitor(t *testing.T, r *Runtime, hcs map[string]*ccv1.HealthCheck) (*health.Monitor, map[string]health.Key) {
	t.Helper()
	m := health.NewMonitor(health.NewChecker(r), logging.Test(t), nil)
	t.Cleanup(m.Close)
	keys := map[string]health.Key{}
	var targets []health.Target
	for id, hc := range hcs {
		o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
		k := health.Key{ID: id, Generation: o.Generation, StartedAt: o.StartedAt}
		keys[id] = k
		targets = append(targets, health.Target{Key: k, Check: hc})
	}
	m.Sync(targets)
	return m, keys
}

// waitHealth polls until the container's health is want, and returns its
// state.
func waitHealth(t *testing.T, m *health.Monitor, k health.Key, want ccv1.HealthState) health.State {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, _ := m.State(k)
		if s.Health == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: health %+v, want %s", k.ID, s, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func execCheck(timeout time.Duration, argv ...string) *ccv1.HealthCheck {
	return &ccv1.HealthCheck{
		Exec: argv, Interval: durationpb.New(200 * time.Millisecond),
		Timeout: durationpb.New(timeout), Retries: 2,
	}
}

func TestHealthExec(t *testing.T) {
	r, _ := newTestRuntime(t)
	pass := start(t, r, spec("/bin/busybox", "sleep", "300"))
	fail := start(t, r, spec("/bin/busybox", "sleep", "300"))
	slow := start(t, r, spec("/bin/busybox", "sleep", "300"))
	m, keys := monitor(t, r, map[string]*ccv1.HealthCheck{
		pass: execCheck(5*time.Second, "/bin/busybox", "true"),
		fail: execCheck(5*time.Second, "/bin/sh", "-c", "echo not ready; exit 1"),
		slow: execCheck(time.Second, "/bin/busybox", "sleep", "10"),
	})
	waitHealth(t, m, keys[pass], ccv1.HealthState_HEALTH_STATE_HEALTHY)
	if s := waitHealth(t, m, keys[fail], ccv1.HealthState_HEALTH_STATE_UNHEALTHY); s.Output != "exit code 1: not ready" {
		t.Errorf("output of the failing check: %q", s.Output)
	}
	s := waitHealth(t, m, keys[slow], ccv1.HealthState_HEALTH_STATE_UNHEALTHY)
	if !strings.Contains(s.Output, "timed out after 1s") {
		t.Errorf("output of the slow check: %q", s.Output)
	}
	// Stop the probers, so no check runs while the processes are counted.
	m.Close()
	for _, id := range []string{pass, fail, slow} {
		if n := pids(t, r, id); n != 1 {
			t.Errorf("%d processes in container %s after its checks, want 1", n, id)
		}
	}
	if left := fifosLeft(t, r); len(left) != 0 {
		t.Errorf("FIFOs left behind: %v", left)
	}
}

func TestHealthHTTP(t *testing.T) {
	r, _ := newTestRuntime(t)
	const web = "echo ok > /tmp/ready; exec /bin/busybox httpd -f -p 8080 -h /tmp"
	none := start(t, r, spec("/bin/sh", "-c", web))
	missing := start(t, r, spec("/bin/sh", "-c", web))
	bridged := spec("/bin/sh", "-c", web)
	bridged.Network = ccv1.NetworkMode_NETWORK_MODE_BRIDGE
	bridge := start(t, r, bridged)
	closed := start(t, r, spec("/bin/busybox", "sleep", "300"))
	check := func(path string) *ccv1.HealthCheck {
		return &ccv1.HealthCheck{
			HttpPath: path, HttpPort: 8080, Interval: durationpb.New(200 * time.Millisecond),
			Timeout: durationpb.New(2 * time.Second), Retries: 2,
			// httpd needs a moment to listen: failures meanwhile do not
			// count.
			StartPeriod: durationpb.New(2 * time.Second),
		}
	}
	m, keys := monitor(t, r, map[string]*ccv1.HealthCheck{
		none:    check("/ready"),
		missing: check("/missing"),
		bridge:  check("/ready"),
		closed:  check("/ready"),
	})
	waitHealth(t, m, keys[none], ccv1.HealthState_HEALTH_STATE_HEALTHY)
	waitHealth(t, m, keys[bridge], ccv1.HealthState_HEALTH_STATE_HEALTHY)
	if s := waitHealth(t, m, keys[missing], ccv1.HealthState_HEALTH_STATE_UNHEALTHY); !strings.Contains(s.Output, "HTTP 404") {
		t.Errorf("output of the 404 check: %q", s.Output)
	}
	if s := waitHealth(t, m, keys[closed], ccv1.HealthState_HEALTH_STATE_UNHEALTHY); !strings.Contains(s.Output, "refused") {
		t.Errorf("output of the check of a closed port: %q", s.Output)
	}
}
