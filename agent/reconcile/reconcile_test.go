package reconcile

import (
	"reflect"
	"testing"
	"time"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	no        = ccv1.RestartPolicy_RESTART_POLICY_NO
	onFailure = ccv1.RestartPolicy_RESTART_POLICY_ON_FAILURE
	always    = ccv1.RestartPolicy_RESTART_POLICY_ALWAYS
)

func TestDecide(t *testing.T) {
	run := func(id string, gen uint64, p ccv1.RestartPolicy) Desired {
		return Desired{ID: id, Generation: gen, Run: true, Restart: p}
	}
	stopped := func(id string, gen uint64) Desired {
		return Desired{ID: id, Generation: gen, Run: false, StopTimeout: 3 * time.Second}
	}
	running := func(id string, gen uint64) Observed { return Observed{ID: id, Generation: gen, Running: true} }
	exited := func(id string, gen uint64, code int32) Observed {
		return Observed{ID: id, Generation: gen, Exited: true, ExitCode: code}
	}
	cases := []struct {
		name     string
		desired  []Desired
		observed []Observed
		mem      map[string]Memory
		want     []Action
		wake     time.Time
	}{
		{name: "nothing", want: nil},
		{name: "new container starts", desired: []Desired{run("a", 1, no)}, want: []Action{{Kind: Start, ID: "a"}}},
		{name: "running converged", desired: []Desired{run("a", 1, no)}, observed: []Observed{running("a", 1)}},
		{name: "unassigned container is removed", observed: []Observed{running("x", 1)}, want: []Action{{Kind: Remove, ID: "x", Timeout: 10 * time.Second}}},
		{name: "stop a running one", desired: []Desired{stopped("a", 2)}, observed: []Observed{running("a", 1)}, want: []Action{{Kind: Stop, ID: "a", Timeout: 3 * time.Second}}},
		{name: "stopped and exited stays", desired: []Desired{stopped("a", 2)}, observed: []Observed{exited("a", 1, 0)}},
		{name: "newer generation recreates", desired: []Desired{run("a", 3, no)}, observed: []Observed{exited("a", 2, 0)}, want: []Action{{Kind: Start, ID: "a"}}},
		{name: "restart no: exited stays", desired: []Desired{run("a", 1, no)}, observed: []Observed{exited("a", 1, 1)}},
		{name: "on-failure: exit 0 stays", desired: []Desired{run("a", 1, onFailure)}, observed: []Observed{exited("a", 1, 0)}},
		{name: "on-failure: exit 1 restarts", desired: []Desired{run("a", 1, onFailure)}, observed: []Observed{exited("a", 1, 1)},
			want: []Action{{Kind: Start, ID: "a", IsRestart: true}}},
		{name: "always: exit 0 restarts", desired: []Desired{run("a", 1, always)}, observed: []Observed{exited("a", 1, 0)},
			want: []Action{{Kind: Start, ID: "a", IsRestart: true}}},
		{name: "backoff holds the restart and says when to wake",
			desired: []Desired{run("a", 1, always)}, observed: []Observed{exited("a", 1, 0)},
			mem: map[string]Memory{"a": {Generation: 1, Restarts: 2, NextStart: t0.Add(4 * time.Second)}}, wake: t0.Add(4 * time.Second)},
		{name: "backoff of an older generation does not hold a new one",
			desired: []Desired{run("a", 2, always)}, observed: []Observed{exited("a", 1, 0)},
			mem:  map[string]Memory{"a": {Generation: 1, Restarts: 2, NextStart: t0.Add(time.Hour)}},
			want: []Action{{Kind: Start, ID: "a"}}},
		{name: "failed start, restart no: stays failed",
			desired: []Desired{run("a", 1, no)}, mem: map[string]Memory{"a": {Generation: 1, StartFailed: true, NextStart: t0}}},
		{name: "failed start, on-failure: retried after backoff",
			desired: []Desired{run("a", 1, onFailure)}, mem: map[string]Memory{"a": {Generation: 1, StartFailed: true, NextStart: t0.Add(-time.Second)}},
			want: []Action{{Kind: Start, ID: "a", IsRestart: true}}},
		{name: "unhealthy: stopped with its stop timeout",
			desired:  []Desired{{ID: "a", Generation: 1, Run: true, Restart: always, StopTimeout: 7 * time.Second}},
			observed: []Observed{{ID: "a", Generation: 1, Running: true, Unhealthy: true}},
			want:     []Action{{Kind: Stop, ID: "a", Timeout: 7 * time.Second, Unhealthy: true}}},
		{name: "unhealthy, older generation: recreated rather than stopped",
			desired:  []Desired{run("a", 2, always)},
			observed: []Observed{{ID: "a", Generation: 1, Running: true, Unhealthy: true}},
			want:     []Action{{Kind: Start, ID: "a"}}},
		{name: "unhealthy but desired stopped: a plain stop",
			desired:  []Desired{stopped("a", 2)},
			observed: []Observed{{ID: "a", Generation: 1, Running: true, Unhealthy: true}},
			want:     []Action{{Kind: Stop, ID: "a", Timeout: 3 * time.Second}}},
		{name: "on-failure: exit 0 after an unhealthy stop restarts",
			desired: []Desired{run("a", 1, onFailure)}, observed: []Observed{exited("a", 1, 0)},
			mem:  map[string]Memory{"a": {Generation: 1, StoppedUnhealthy: true, NextStart: t0}},
			want: []Action{{Kind: Start, ID: "a", IsRestart: true}}},
		{name: "restart no: exited after an unhealthy stop stays",
			desired: []Desired{run("a", 1, no)}, observed: []Observed{exited("a", 1, 143)},
			mem: map[string]Memory{"a": {Generation: 1, StoppedUnhealthy: true}}},
		{name: "removes and stops come before starts",
			desired:  []Desired{run("b", 1, no), stopped("c", 2)},
			observed: []Observed{running("a", 1), running("c", 1)},
			want: []Action{
				{Kind: Remove, ID: "a", Timeout: 10 * time.Second},
				{Kind: Stop, ID: "c", Timeout: 3 * time.Second},
				{Kind: Start, ID: "b"},
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := map[string]Desired{}
			for _, x := range c.desired {
				d[x.ID] = x
			}
			o := map[string]Observed{}
			for _, x := range c.observed {
				o[x.ID] = x
			}
			got, wake := Decide(d, o, c.mem, t0)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("actions\n got %+v\nwant %+v", got, c.want)
			}
			if !wake.Equal(c.wake) {
				t.Errorf("wake = %v, want %v", wake, c.wake)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}
	for n, w := range want {
		if got := Backoff(uint32(n)); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, w)
		}
	}
	if Backoff(1000) != time.Minute {
		t.Error("Backoff overflows")
	}
}

func TestAfterStart(t *testing.T) {
	m := AfterStart(Memory{}, 1, Action{Kind: Start}, nil, t0)
	if m.Restarts != 0 || m.StartFailed || !m.NextStart.Equal(t0.Add(time.Second)) {
		t.Errorf("first start: %+v", m)
	}
	m = AfterStart(m, 1, Action{Kind: Start, IsRestart: true}, errTest("boom"), t0)
	if m.Restarts != 1 || !m.StartFailed || m.StartFailure != "boom" || !m.NextStart.Equal(t0.Add(2*time.Second)) {
		t.Errorf("failed restart: %+v", m)
	}
	m = AfterStart(m, 2, Action{Kind: Start}, nil, t0)
	if m.Restarts != 0 || m.StartFailed || m.Generation != 2 {
		t.Errorf("new generation resets: %+v", m)
	}
}

func TestAfterStop(t *testing.T) {
	m := AfterStart(Memory{}, 1, Action{Kind: Start}, nil, t0)
	if m = AfterStop(m, 1, Action{Kind: Stop}); m.StoppedUnhealthy {
		t.Errorf("a plain stop: %+v", m)
	}
	if m = AfterStop(m, 1, Action{Kind: Stop, Unhealthy: true}); !m.StoppedUnhealthy || !m.NextStart.Equal(t0.Add(time.Second)) {
		t.Errorf("an unhealthy stop: %+v", m)
	}
	if m = AfterStart(m, 1, Action{Kind: Start, IsRestart: true}, nil, t0); m.StoppedUnhealthy || m.Restarts != 1 {
		t.Errorf("the restart after an unhealthy stop: %+v", m)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
