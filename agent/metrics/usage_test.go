package metrics

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The node totals only grow: a container's restart (its counters back at
// zero) and its end keep what it added.
func TestUsageTotalsGrow(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "v1", "n1")
	var samples []Usage
	m.SetUsage(func(context.Context) []Usage { return samples })
	cpu := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "cc_containers_cpu_seconds_total" {
				continue
			}
			for _, mm := range mf.GetMetric() {
				if mm.GetLabel()[0].GetValue() == KindContainer {
					return mm.GetCounter().GetValue()
				}
			}
		}
		t.Fatal("no cc_containers_cpu_seconds_total{kind=\"container\"}")
		return 0
	}
	for _, step := range []struct {
		samples []Usage
		want    float64
	}{
		{[]Usage{{ID: "a", Name: "web", CPUSeconds: 2}, {ID: "j", Name: "j", Job: true, CPUSeconds: 50}}, 2},
		{[]Usage{{ID: "a", Name: "web", CPUSeconds: 5}}, 5},
		{[]Usage{{ID: "a", Name: "web", CPUSeconds: 1}}, 6}, // restarted
		{nil, 6}, // gone
		{[]Usage{{ID: "b", Name: "db", CPUSeconds: 1}}, 7},
	} {
		samples = step.samples
		if got := cpu(); got != step.want {
			t.Fatalf("after %v: %v, want %v", step.samples, got, step.want)
		}
	}
}

// Only plain containers get cc_container_* series, at most
// MaxNamedContainers of them.
func TestUsageNamedCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "v1", "n1")
	var samples []Usage
	for i := 0; i < MaxNamedContainers+5; i++ {
		samples = append(samples, Usage{ID: fmt.Sprint("c", i), Name: fmt.Sprintf("c%03d", i), Pids: 1})
	}
	samples = append(samples, Usage{ID: "j", Name: "attempt", Job: true, Pids: 1})
	m.SetUsage(func(context.Context) []Usage { return samples })
	if n, err := testutil.GatherAndCount(reg, "cc_container_pids"); err != nil || n != MaxNamedContainers {
		t.Fatalf("cc_container_pids series: %d, %v; want %d", n, err, MaxNamedContainers)
	}
	if v := testutil.ToFloat64(collectorOf(t, reg, "cc_container_series_omitted")); v != 5 {
		t.Errorf("omitted = %v, want 5", v)
	}
}

func collectorOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
			g.Set(mf.GetMetric()[0].GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("no %s", name)
	return nil
}
