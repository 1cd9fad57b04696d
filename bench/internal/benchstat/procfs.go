package benchstat

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// Proc is a process's resident memory and CPU time so far.
type Proc struct {
	RSS int64 // bytes
	// RSSAnon and RSSFile split RSS: anonymous memory (the heap, stacks)
	// and pages of mapped files (bbolt maps its database: the kernel can
	// drop those pages when memory is short and read them back).
	RSSAnon, RSSFile int64
	CPU              time.Duration
	// OK says both were read.
	OK bool
}

// ReadProc reads /proc/PID/status (VmRSS, RssAnon, RssFile) and /proc/PID/stat (utime and
// stime); a zero Proc for pid ≤ 0.
func ReadProc(pid int) Proc {
	var p Proc
	if pid <= 0 {
		return p
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for prefix, dst := range map[string]*int64{"VmRSS:": &p.RSS, "RssAnon:": &p.RSSAnon, "RssFile:": &p.RSSFile} {
			if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				kib, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
				*dst = kib << 10
			}
		}
	}
	fields, ok := statFields(pid)
	if !ok || len(fields) < 13 {
		return p
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(fields[12], 10, 64) // field 15
	p.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	p.OK = true
	return p
}

// Alive says whether a child process still runs (not yet exited, or a
// zombie not yet reaped).
func Alive(pid int) bool {
	fields, ok := statFields(pid)
	return ok && len(fields) > 0 && !strings.HasPrefix(fields[0], "Z")
}

// statFields is /proc/PID/stat from field 3 (the state) on. The command
// name (field 2) may hold spaces: the fields are counted from after its
// ")".
func statFields(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// OpenFiles counts the file descriptors of this process, -1 if unknown.
func OpenFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// FileSize is the size of a file, -1 when it is missing.
func FileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// DirSize sums the sizes of the files under dir and counts its entries;
// -1 and 0 when dir cannot be read.
func DirSize(dir string) (size int64, entries int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1, 0
	}
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return nil
	})
	return size, len(ents)
}

// LoadAvg is the first three fields of /proc/loadavg, "?" if unknown.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// NProc counts the CPUs this process may run on, as nproc(1) does; 0 if
// unknown.
func NProc() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			if n := cpuListLen(rest); n > 0 {
				return n
			}
		}
	}
	return 0
}

// cpuListLen counts the CPUs of a list such as "0-3,8,10-11".
func cpuListLen(list string) int {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(list), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if found {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 == nil && err2 == nil && z >= a {
			n += z - a + 1
		}
	}
	return n
}

// MemTotal is MemTotal of /proc/meminfo in bytes, -1 if unknown.
func MemTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kib, _ := strconv.ParseInt(f[0], 10, 64)
				return kib << 10
			}
		}
	}
	return -1
}
