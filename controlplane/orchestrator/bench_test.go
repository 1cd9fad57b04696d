package orchestrator

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// scaleInput is 5,000 nodes and 100 services of 1,000 replicas; with
// placed, every task already runs on its node.
func scaleInput(placed bool) Input {
	var nodes []*ccv1.Node
	for i := range 5000 {
		nodes = append(nodes, node(fmt.Sprintf("n%04d", i)))
	}
	var services []*ccv1.Service
	var tasks []*statev1.ContainerRecord
	for s := range 100 {
		svc := service(fmt.Sprintf("s%03d", s), 1000, 1)
		svc.Spec.Task.Resources = &ccv1.ContainerResources{MemoryReservationBytes: 16 << 20, CpuReservationMillis: 10}
		services = append(services, svc)
		if placed {
			for slot := uint32(1); slot <= 1000; slot++ {
				tasks = append(tasks, task(svc, fmt.Sprintf("%s-%d", svc.Name, slot), slot, nodes[(s*1000+int(slot))%len(nodes)].Id, 1))
			}
		}
	}
	return Input{Services: services, Tasks: tasks, Nodes: nodes, Now: t0}
}

// BenchmarkPlanCreate100k plans 100,000 new tasks on 5,000 nodes.
func BenchmarkPlanCreate100k(b *testing.B) {
	in := scaleInput(false)
	b.ResetTimer()
	for range b.N {
		in.NewID = counter()
		p := Make(in)
		if len(p.Ops) != 100_000 {
			b.Fatalf("%d ops", len(p.Ops))
		}
	}
}

// BenchmarkPlanSteady100k plans a converged cluster of 100,000 tasks.
func BenchmarkPlanSteady100k(b *testing.B) {
	in := scaleInput(true)
	in.NewID = counter()
	b.ResetTimer()
	for range b.N {
		if p := Make(in); len(p.Ops) != 0 {
			b.Fatalf("%d ops", len(p.Ops))
		}
	}
}

// trackerFor indexes in's tasks in a tracker that has planned them.
func trackerFor(b *testing.B, in Input) *Tracker {
	tr := NewTracker()
	for _, r := range in.Tasks {
		tr.PutTask(r.GetContainer())
	}
	d := tr.Dirty(in.Services, in.Nodes, in.Now)
	p := Make(Input{Services: in.Services, Nodes: in.Nodes, Now: in.Now, NewID: in.NewID, Index: tr.Index, Dirty: d})
	if len(p.Ops) != 0 {
		b.Fatalf("%d ops", len(p.Ops))
	}
	tr.Planned(d, in.Services, in.Nodes, p)
	return tr
}

// BenchmarkPlanSteadyIndexed100k plans every service of a converged
// cluster of 100,000 tasks from the index (the leader's safety-net pass).
func BenchmarkPlanSteadyIndexed100k(b *testing.B) {
	in := scaleInput(true)
	in.NewID = counter()
	tr := trackerFor(b, in)
	b.ResetTimer()
	for range b.N {
		if p := Make(Input{Services: in.Services, Nodes: in.Nodes, Now: in.Now, NewID: in.NewID, Index: tr.Index}); len(p.Ops) != 0 {
			b.Fatalf("%d ops", len(p.Ops))
		}
	}
}

// BenchmarkPlanOneTaskChanged100k plans a converged cluster of 100,000
// tasks after one task reported: one service of 1,000 tasks is planned.
func BenchmarkPlanOneTaskChanged100k(b *testing.B) {
	in := scaleInput(true)
	in.NewID = counter()
	tr := trackerFor(b, in)
	c := in.Tasks[len(in.Tasks)/2].GetContainer()
	b.ResetTimer()
	for range b.N {
		tr.PutTask(c)
		d := tr.Dirty(in.Services, in.Nodes, in.Now)
		if len(d) != 1 {
			b.Fatalf("dirty %v", d)
		}
		p := Make(Input{Services: in.Services, Nodes: in.Nodes, Now: in.Now, NewID: in.NewID, Index: tr.Index, Dirty: d})
		if len(p.Ops) != 0 {
			b.Fatalf("%d ops", len(p.Ops))
		}
		tr.Planned(d, in.Services, in.Nodes, p)
	}
}

// BenchmarkPlanScaleUp100k plans one service scaled from 1,000 to 2,000
// replicas in a cluster of 100,000 tasks: 1,000 tasks created and placed.
func BenchmarkPlanScaleUp100k(b *testing.B) {
	in := scaleInput(true)
	in.NewID = counter()
	tr := trackerFor(b, in)
	services := slices.Clone(in.Services)
	s := proto.Clone(services[50]).(*ccv1.Service)
	s.Spec.Replicas = 2000
	services[50] = s
	b.ResetTimer()
	for range b.N {
		d := map[string]bool{s.Id: true}
		p := Make(Input{Services: services, Nodes: in.Nodes, Now: in.Now, NewID: in.NewID, Index: tr.Index, Dirty: d})
		if len(p.Ops) != 1000 {
			b.Fatalf("%d ops", len(p.Ops))
		}
	}
}
