package cli

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"16g": 16 << 30, "512m": 512 << 20, "1.5GiB": 3 << 29, "2048": 2048, "1t": 1 << 40, "64kb": 64 << 10} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "g", "-1g", "0", "lots", "1e30"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
