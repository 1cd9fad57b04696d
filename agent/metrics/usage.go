package metrics

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxNamedContainers caps the cc_container_* series: those of at most this
// many plain containers (not job attempts) are exported, the first by
// name; cc_container_series_omitted counts the rest.
const MaxNamedContainers = 100

// usageTimeout bounds the sampling at one scrape.
const usageTimeout = 5 * time.Second

// Usage is one running container's use, as sampled at a scrape. The
// counters are cumulative since its task started.
type Usage struct {
	ID, Name string
	// Job is set for a job attempt.
	Job             bool
	CPUSeconds      float64
	MemoryBytes     float64
	MemoryLimit     float64
	Pids            float64
	NetRxBytes      float64
	NetTxBytes      float64
	BlockReadBytes  float64
	BlockWriteBytes float64
}

type usageState struct {
	read atomic.Pointer[func(context.Context) []Usage]

	mu     sync.Mutex
	last   map[string]Usage       // container id → its previous sample
	totals map[string]*usageTotal // kind → what its containers used
}

type usageTotal struct{ cpu, rx, tx, read, write float64 }

// SetUsage makes read the source of the containers' resource series: it
// samples the node's running containers when /metrics is scraped.
func (m *Metrics) SetUsage(read func(context.Context) []Usage) {
	if m != nil {
		m.usage.read.Store(&read)
	}
}

// add counts what each container used since the previous scrape into its
// kind's totals, so that they only grow: a container seen for the first
// time (or restarted, its counters back at zero) adds all it has; one that
// is gone keeps what it added.
func (s *usageState) add(samples []Usage) map[string]usageTotal {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.totals == nil {
		s.totals = map[string]*usageTotal{KindContainer: {}, KindJob: {}}
	}
	delta := func(now, before float64) float64 {
		if now < before {
			return now
		}
		return now - before
	}
	next := make(map[string]Usage, len(samples))
	for _, u := range samples {
		p := s.last[u.ID]
		t := s.totals[kindOf(u)]
		t.cpu += delta(u.CPUSeconds, p.CPUSeconds)
		t.rx += delta(u.NetRxBytes, p.NetRxBytes)
		t.tx += delta(u.NetTxBytes, p.NetTxBytes)
		t.read += delta(u.BlockReadBytes, p.BlockReadBytes)
		t.write += delta(u.BlockWriteBytes, p.BlockWriteBytes)
		next[u.ID] = u
	}
	s.last = next
	out := map[string]usageTotal{}
	for k, t := range s.totals {
		out[k] = *t
	}
	return out
}

func kindOf(u Usage) string {
	if u.Job {
		return KindJob
	}
	return KindContainer
}

func (m *Metrics) registerUsage() {
	var (
		cpu     = desc("containers_cpu_seconds_total", "CPU time the node's containers used, by kind, counted at scrapes from their cgroups.", "kind")
		rx      = desc("containers_network_receive_bytes_total", "Bytes the node's containers received on their interfaces but loopback, by kind.", "kind")
		tx      = desc("containers_network_transmit_bytes_total", "Bytes the node's containers sent on their interfaces but loopback, by kind.", "kind")
		rd      = desc("containers_block_read_bytes_total", "Bytes the node's containers read from block devices, by kind.", "kind")
		wr      = desc("containers_block_write_bytes_total", "Bytes the node's containers wrote to block devices, by kind.", "kind")
		mem     = desc("containers_memory_usage_bytes", "Memory the node's running containers use (less reclaimable page cache), by kind.", "kind")
		pids    = desc("containers_pids", "Processes in the node's running containers, by kind.", "kind")
		cCPU    = desc("container_cpu_seconds_total", "CPU time a plain container used since its task started.", "name")
		cMem    = desc("container_memory_usage_bytes", "Memory a plain container uses (less reclaimable page cache).", "name")
		cLimit  = desc("container_memory_limit_bytes", "A plain container's memory limit, or its node's memory.", "name")
		cPids   = desc("container_pids", "Processes in a plain container.", "name")
		cRx     = desc("container_network_receive_bytes_total", "Bytes a plain container received since its task started (loopback left out).", "name")
		cTx     = desc("container_network_transmit_bytes_total", "Bytes a plain container sent since its task started (loopback left out).", "name")
		cRd     = desc("container_block_read_bytes_total", "Bytes a plain container read from block devices since its task started.", "name")
		cWr     = desc("container_block_write_bytes_total", "Bytes a plain container wrote to block devices since its task started.", "name")
		omitted = desc("container_series_omitted", "Plain containers running here whose cc_container_* series are left out: more than the cap of 100.")
	)
	counter := func(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	m.reg.MustRegister(&funcCollector{
		descs: []*prometheus.Desc{cpu, rx, tx, rd, wr, mem, pids, cCPU, cMem, cLimit, cPids, cRx, cTx, cRd, cWr, omitted},
		collect: func(ch chan<- prometheus.Metric) {
			read := m.usage.read.Load()
			if read == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), usageTimeout)
			samples := (*read)(ctx)
			cancel()
			totals := m.usage.add(samples)
			memBy, pidsBy := map[string]float64{KindContainer: 0, KindJob: 0}, map[string]float64{KindContainer: 0, KindJob: 0}
			var named []Usage
			for _, u := range samples {
				memBy[kindOf(u)] += u.MemoryBytes
				pidsBy[kindOf(u)] += u.Pids
				if !u.Job && u.Name != "" {
					named = append(named, u)
				}
			}
			for _, k := range []string{KindContainer, KindJob} {
				t := totals[k]
				counter(ch, cpu, t.cpu, k)
				counter(ch, rx, t.rx, k)
				counter(ch, tx, t.tx, k)
				counter(ch, rd, t.read, k)
				counter(ch, wr, t.write, k)
				gauge(ch, mem, memBy[k], k)
				gauge(ch, pids, pidsBy[k], k)
			}
			sort.Slice(named, func(i, j int) bool { return named[i].Name < named[j].Name })
			left := 0
			if len(named) > MaxNamedContainers {
				left = len(named) - MaxNamedContainers
				named = named[:MaxNamedContainers]
			}
			gauge(ch, omitted, float64(left))
			for i, u := range named {
				if i > 0 && named[i-1].Name == u.Name {
					continue // names are unique; a replaced one may linger a moment
				}
				counter(ch, cCPU, u.CPUSeconds, u.Name)
				gauge(ch, cMem, u.MemoryBytes, u.Name)
				gauge(ch, cLimit, u.MemoryLimit, u.Name)
				gauge(ch, cPids, u.Pids, u.Name)
				counter(ch, cRx, u.NetRxBytes, u.Name)
				counter(ch, cTx, u.NetTxBytes, u.Name)
				counter(ch, cRd, u.BlockReadBytes, u.Name)
				counter(ch, cWr, u.BlockWriteBytes, u.Name)
			}
		},
	})
}
