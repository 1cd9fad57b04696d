package runtime

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"
)

// Stats is one sample of a running container's resource use. The counters
// (CPU, network, block I/O) are cumulative since the task started: a rate
// needs two samples.
type Stats struct {
	ID   string
	Name string
	// JobID is set for a job attempt.
	JobID string
	// ReadAt is when the sample was taken.
	ReadAt time.Time
	// CPUNanos is the CPU time used by the container's processes.
	CPUNanos uint64
	// MemoryUsage is the memory charged to the container, less the page
	// cache it could give back (as docker shows it); MemoryLimit is its
	// limit (0 or the host's memory when it has none).
	MemoryUsage uint64
	MemoryLimit uint64
	Pids        uint64
	PidsLimit   uint64
	// NetRx and NetTx count bytes on the container's interfaces other
	// than loopback.
	NetRx uint64
	NetTx uint64
	// BlockRead and BlockWrite count bytes read from and written to block
	// devices.
	BlockRead  uint64
	BlockWrite uint64
}

// Stats samples the running container's cgroup (through containerd's task
// metrics) and the network counters of its network namespace. A container
// that has no running task is an error wrapping ErrNotFound.
func (r *Runtime) Stats(ctx context.Context, id string) (Stats, error) {
	if err := validID(id); err != nil {
		return Stats{}, err
	}
	ctx = r.withNS(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return Stats{}, fmt.Errorf("container %s: %w", id, err)
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return Stats{}, fmt.Errorf("container %s has no running task: %w", id, err)
	}
	m, err := task.Metrics(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("container %s: read its metrics: %w", id, err)
	}
	s := Stats{ID: id, Name: labels[LabelName], JobID: labels[LabelJob], ReadAt: time.Now()}
	if ts := m.Timestamp; ts != nil && ts.IsValid() && ts.AsTime().Unix() > 0 {
		s.ReadAt = ts.AsTime()
	}
	if m.Data == nil {
		return Stats{}, fmt.Errorf("container %s: containerd returned no metrics", id)
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return Stats{}, fmt.Errorf("container %s: decode its metrics (%s): %w", id, m.Data.GetTypeUrl(), err)
	}
	switch d := data.(type) {
	case *cg1.Metrics:
		fromCgroup1(&s, d)
	case *cg2.Metrics:
		fromCgroup2(&s, d)
	default:
		return Stats{}, fmt.Errorf("container %s: metrics of type %T are not understood", id, data)
	}
	if host := hostMemory(); host > 0 && (s.MemoryLimit == 0 || s.MemoryLimit > host) {
		s.MemoryLimit = host // no limit: the host's memory bounds it
	}
	if pid := task.Pid(); pid > 0 {
		// The container may exit between the two reads: it then has no
		// network to count, which is not an error.
		if rx, tx, err := netDev(fmt.Sprintf("/proc/%d/net/dev", pid)); err == nil {
			s.NetRx, s.NetTx = rx, tx
		}
	}
	return s, nil
}

// hostMemory is the host's RAM in bytes, 0 when unknown.
func hostMemory() uint64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

func fromCgroup1(s *Stats, m *cg1.Metrics) {
	if u := m.GetCPU().GetUsage(); u != nil {
		s.CPUNanos = u.Total
	}
	if mem := m.GetMemory(); mem != nil {
		usage := mem.GetUsage().GetUsage()
		// docker subtracts the inactive page cache: it is reclaimable.
		if inactive := mem.TotalInactiveFile; inactive < usage {
			usage -= inactive
		}
		s.MemoryUsage = usage
		s.MemoryLimit = mem.GetUsage().GetLimit()
		if h := mem.HierarchicalMemoryLimit; h != 0 && (s.MemoryLimit == 0 || h < s.MemoryLimit) {
			s.MemoryLimit = h
		}
	}
	s.Pids = m.GetPids().GetCurrent()
	s.PidsLimit = m.GetPids().GetLimit()
	for _, e := range m.GetBlkio().GetIoServiceBytesRecursive() {
		switch strings.ToLower(e.Op) {
		case "read":
			s.BlockRead += e.Value
		case "write":
			s.BlockWrite += e.Value
		}
	}
}

func fromCgroup2(s *Stats, m *cg2.Metrics) {
	s.CPUNanos = m.GetCPU().GetUsageUsec() * 1000
	if mem := m.GetMemory(); mem != nil {
		usage := mem.Usage
		if mem.InactiveFile < usage {
			usage -= mem.InactiveFile
		}
		s.MemoryUsage = usage
		s.MemoryLimit = mem.UsageLimit
	}
	s.Pids = m.GetPids().GetCurrent()
	s.PidsLimit = m.GetPids().GetLimit()
	for _, e := range m.GetIo().GetUsage() {
		s.BlockRead += e.Rbytes
		s.BlockWrite += e.Wbytes
	}
}

// netDev sums the received and sent bytes of every interface but loopback
// in a /proc/<pid>/net/dev file: the counters of the namespace that process
// is in.
func netDev(path string) (rx, tx uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return parseNetDev(f)
}

func parseNetDev(r io.Reader) (rx, tx uint64, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue // the two header lines
		}
		if strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		// receive: bytes packets errs drop fifo frame compressed multicast;
		// transmit: bytes …
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(f[0], 10, 64)
		t, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rx += r
		tx += t
	}
	return rx, tx, sc.Err()
}
