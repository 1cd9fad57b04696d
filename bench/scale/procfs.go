package main

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

// procStat is a process's resident memory and CPU time so far.
type procStat struct {
	rss int64 // bytes
	cpu time.Duration
	ok  bool
}

// readProc reads /proc/PID/status (VmRSS) and /proc/PID/stat (utime and
// stime).
func readProc(pid int) procStat {
	if pid <= 0 {
		return procStat{}
	}
	var p procStat
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			p.rss = kib << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p
	}
	// The command name (field 2) may hold spaces: count from after ")".
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return p
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(fields[12], 10, 64) // field 15
	p.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	p.ok = true
	return p
}

// openFiles counts the file descriptors of this process.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// fileSize is the size of a file, -1 when it is missing.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// dirSize sums the sizes of the files under dir and counts its entries.
func dirSize(dir string) (size int64, entries int) {
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

func mib(b int64) string {
	if b < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
