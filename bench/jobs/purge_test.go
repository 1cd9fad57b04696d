package main

import "testing"

func TestJobNetwork(t *testing.T) {
	for _, c := range []struct{ bridge, subnet, wantBridge, wantSubnet string }{
		{"ccjb0a1b2c", "10.215.7.0/24", "ccjb0a1b2cj", "10.217.7.0/24"},
		{"", "10.215.7.0/24", "", ""},
		{"b", "nope", "", ""},
	} {
		b, s := jobNetwork(c.bridge, c.subnet)
		if b != c.wantBridge || s != c.wantSubnet {
			t.Errorf("jobNetwork(%q, %q) = %q, %q", c.bridge, c.subnet, b, s)
		}
	}
}
