package orchestrator

import (
	"fmt"
	"testing"

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
