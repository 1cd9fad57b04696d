package benchstat

import (
	"os"
	"testing"
	"time"
)

func TestPct(t *testing.T) {
	ms := func(v ...int) Dist {
		d := make(Dist, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	tests := []struct {
		name string
		d    Dist
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 4 is the second (nearest rank)", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p90 of 10 is the ninth", ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 90, 9 * time.Millisecond},
		{"p0 is the first", ms(3, 1, 2), 0, time.Millisecond},
		{"p100 is the max", ms(3, 1, 2), 100, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := tt.d.Pct(tt.p); got != tt.want {
			t.Errorf("%s: Pct(%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
	if d := ms(3, 1, 2); d[0] != 3*time.Millisecond {
		t.Errorf("Pct sorted its receiver: %v", d)
	}
}

func TestLine(t *testing.T) {
	d := Dist{1500 * time.Microsecond, 25 * time.Millisecond, 2 * time.Second}
	if got, want := d.Line(), "p50 25.0 ms  p90 2000 ms  p99 2000 ms  max 2000 ms  (n=3)"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	if got, want := d.Short(), "p50 25.0 ms / p99 2000 ms"; got != want {
		t.Errorf("Short = %q, want %q", got, want)
	}
	if got, want := Ms(1500*time.Microsecond), "1.50 ms"; got != want {
		t.Errorf("Ms = %q, want %q", got, want)
	}
}

// Quantile(s, p/100) is s[n*p/100], the index writeload used, for every
// length up to a million.
func TestQuantileIsIntegerIndex(t *testing.T) {
	const maxN = 1_000_000
	s := make([]time.Duration, maxN)
	for i := range s {
		s[i] = time.Duration(i)
	}
	for n := 1; n <= maxN; n++ {
		for _, p := range []int{50, 90, 99} {
			if got, want := Quantile(s[:n], float64(p)/100), s[n*p/100]; got != want {
				t.Fatalf("n=%d p%d: Quantile = index %d, want %d", n, p, got, want)
			}
		}
	}
}

func TestMiB(t *testing.T) {
	if got := MiB(-1); got != "-" {
		t.Errorf("MiB(-1) = %q", got)
	}
	if got := MiB(3 << 19); got != "1.5 MiB" {
		t.Errorf("MiB = %q", got)
	}
	if got := KiB(1536); got != "1.5 KiB" {
		t.Errorf("KiB = %q", got)
	}
}

func TestCPUListLen(t *testing.T) {
	for list, want := range map[string]int{"0": 1, "0-3": 4, "0-3,8,10-11\n": 7, "": 0, "3-1": 0} {
		if got := cpuListLen(list); got != want {
			t.Errorf("cpuListLen(%q) = %d, want %d", list, got, want)
		}
	}
}

func TestProcfs(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	p := ReadProc(os.Getpid())
	if !p.OK || p.RSS <= 0 {
		t.Errorf("ReadProc(self) = %+v", p)
	}
	if ReadProc(0) != (Proc{}) {
		t.Error("ReadProc(0) is not zero")
	}
	if !Alive(os.Getpid()) {
		t.Error("Alive(self) = false")
	}
	if NProc() <= 0 || MemTotal() <= 0 || LoadAvg() == "?" || OpenFiles() <= 0 {
		t.Errorf("NProc %d, MemTotal %d, LoadAvg %q, OpenFiles %d", NProc(), MemTotal(), LoadAvg(), OpenFiles())
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/f", make([]byte, 10), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := FileSize(dir + "/f"); got != 10 {
		t.Errorf("FileSize = %d", got)
	}
	if got := FileSize(dir + "/missing"); got != -1 {
		t.Errorf("FileSize of a missing file = %d", got)
	}
	if size, n := DirSize(dir); size != 10 || n != 1 {
		t.Errorf("DirSize = %d, %d", size, n)
	}
}
