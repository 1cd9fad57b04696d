package api

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/jobspec"
)

// FreeSpaceFunc reports the bytes free (to an unprivileged writer) and the
// size of the file system that holds dir.
type FreeSpaceFunc func(dir string) (free, total uint64, err error)

// Statfs is the FreeSpaceFunc of the running system.
func Statfs(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// DiskFloor is the least free space the server's data disk must keep:
// below it every server refuses new uploads (images, job inputs, site
// bundles) and job submits, so that raft and the state database can still
// write. A nil DiskFloor, or one with neither minimum, checks nothing.
type DiskFloor struct {
	// Dir is the data dir; its file system is the one checked.
	Dir string
	// MinBytes is the floor in bytes.
	MinBytes int64
	// MinPercent is the floor in percent of the file system's size; the
	// larger of the two floors applies.
	MinPercent float64
	// Free reads the free space; nil is Statfs.
	Free FreeSpaceFunc

	mu      sync.Mutex
	checked time.Time
	last    error
}

// diskCheckEvery is how long a Check answer is reused.
const diskCheckEvery = time.Second

// floor is the floor in bytes on a file system of total bytes.
func (d *DiskFloor) floor(total uint64) uint64 {
	f := uint64(max(d.MinBytes, 0))
	if p := uint64(d.MinPercent / 100 * float64(total)); p > f {
		f = p
	}
	return f
}

// Check says whether the data disk has more free space than the floor: nil,
// or a ResourceExhausted error that says how much is free and what to do.
// A disk that cannot be read is not refused (the error is logged by the
// caller of Ready).
func (d *DiskFloor) Check() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.MinBytes <= 0 && d.MinPercent <= 0 {
		return nil
	}
	if !d.checked.IsZero() && time.Since(d.checked) < diskCheckEvery {
		return d.last
	}
	d.checked, d.last = time.Now(), d.measure()
	return d.last
}

// Set changes the floor (a reload of the configuration); the next Check
// measures again.
func (d *DiskFloor) Set(minBytes int64, minPercent float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.MinBytes, d.MinPercent = minBytes, minPercent
	d.checked = time.Time{}
}

// Status reads the free space and size of the data disk now, with the
// floor in bytes.
func (d *DiskFloor) Status() (free, total, floor uint64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fn := d.Free
	if fn == nil {
		fn = Statfs
	}
	free, total, err = fn(d.Dir)
	return free, total, d.floor(total), err
}

func (d *DiskFloor) measure() error {
	free := d.Free
	if free == nil {
		free = Statfs
	}
	avail, total, err := free(d.Dir)
	if err != nil {
		return nil
	}
	if fl := d.floor(total); avail < fl {
		return status.Errorf(codes.ResourceExhausted, "the server's data disk has %s free, below the floor of %s: free space or raise min_free_disk",
			jobspec.FormatBytes(int64(avail)), jobspec.FormatBytes(int64(fl)))
	}
	return nil
}
