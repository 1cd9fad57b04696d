package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchCluster returns nodes (16 CPUs, 64 GiB, in three zones and 40
// racks; 1% not ready, 0.4% paused), 20,000 placed tasks and
// services×replicas pending tasks in FIFO order (a service's tasks
// together) or, with interleave, round robin across the services. Every
// third service spreads over zones (or every service over the spread
// attributes given), every fourth avoids zone c, every tenth binds a host
// port.
func benchCluster(nodeCount, services, replicas int, interleave bool, spread ...string) ([]Node, []Task, []Task) {
	r := rand.New(rand.NewPCG(1, 2))
	nodes := make([]Node, nodeCount)
	for i := range nodes {
		nodes[i] = Node{
			ID: fmt.Sprintf("node-%05d", i), Name: fmt.Sprintf("host%d", i),
			Labels:   map[string]string{"zone": string(rune('a' + i%3)), "rack": fmt.Sprint(i % 40)},
			Ready:    i%100 != 0,
			Active:   i%250 != 1,
			Capacity: Resources{CPUMillis: 16000, MemoryBytes: 64 * gib},
		}
	}
	placed := make([]Task, 20000)
	for i := range placed {
		placed[i] = Task{
			ID: fmt.Sprintf("placed-%d", i), ServiceID: fmt.Sprintf("svc-%d", r.IntN(services)),
			NodeID: nodes[r.IntN(nodeCount)].ID, Reserve: Resources{CPUMillis: 250, MemoryBytes: 512 * mib},
		}
	}
	kinds := make([]Task, services)
	for s := range kinds {
		t := Task{ServiceID: fmt.Sprintf("svc-%d", s), Reserve: Resources{CPUMillis: 100, MemoryBytes: 256 * mib}}
		if s%3 == 0 {
			t.Spread = []string{"node.labels.zone"}
		}
		if spread != nil {
			t.Spread = spread
		}
		if s%4 == 0 {
			t.Constraints = []Constraint{{Attr: "node.labels.zone", Op: Ne, Value: "c"}}
		}
		if s%10 == 0 {
			t.HostPorts = []Port{{Number: int32(8000 + s)}}
		}
		kinds[s] = t
	}
	pending := make([]Task, 0, services*replicas)
	add := func(s, i int) {
		t := kinds[s]
		t.ID = fmt.Sprintf("svc-%d.%d", s, i)
		pending = append(pending, t)
	}
	if interleave {
		for i := range replicas {
			for s := range services {
				add(s, i)
			}
		}
	} else {
		for s := range services {
			for i := range replicas {
				add(s, i)
			}
		}
	}
	return nodes, placed, pending
}

// BenchmarkPlace places 100,000 pending tasks on 5,000 nodes.
//
//	go test -run '^$' -bench BenchmarkPlace -benchmem ./controlplane/scheduler/
func BenchmarkPlace(b *testing.B) {
	shapes := []struct {
		name               string
		services, replicas int
		interleave         bool
		spread             []string
	}{
		{"100x1000", 100, 1000, false, nil},
		{"1000x100", 1000, 100, false, nil},
		{"100x1000-interleaved", 100, 1000, true, nil},
		// Every service spreads over 40 racks, then over nodes: a tree of
		// 5,041 buckets per group.
		{"1000x100-rack-node", 1000, 100, false, []string{"node.labels.rack", "node.id"}},
	}
	for _, sh := range shapes {
		nodes, placed, pending := benchCluster(5000, sh.services, sh.replicas, sh.interleave, sh.spread...)
		for _, st := range []struct {
			name     string
			strategy Strategy
		}{{"spread", Spread}, {"binpack", Binpack}} {
			b.Run(sh.name+"/"+st.name, func(b *testing.B) {
				var res Result
				start := cpuTime()
				for b.Loop() {
					res = Place(nodes, placed, pending, st.strategy)
				}
				// On a shared machine ns/op counts the time other processes
				// held the CPU; cpu-ns/op is the CPU this process used
				// (garbage collection included).
				b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(len(res.Assigned)), "assigned")
			})
		}
	}
}
