package cli

import (
	"strings"
	"testing"
)

func TestEdgeOptionsValidate(t *testing.T) {
	for _, c := range []struct {
		o    EdgeOptions
		want string // "" for valid
	}{
		{EdgeOptions{Enabled: true, HTTPAddr: ":80", HTTPSAddr: ":443"}, ""},
		{EdgeOptions{Enabled: true, HTTPAddr: "127.0.0.1:8000", HTTPSAddr: "off"}, ""},
		{EdgeOptions{Enabled: true, HTTPAddr: ":80", HTTPSAddr: ""}, ""},
		{EdgeOptions{Enabled: true, HTTPAddr: ":80", HTTPSAddr: "443"}, "--edge-https-addr"},
		{EdgeOptions{Enabled: true, HTTPAddr: "80", HTTPSAddr: ":443"}, "--edge-http-addr"},
		{EdgeOptions{Enabled: true, HTTPAddr: ":80", HTTPSAddr: ":443", HTTPSPublicPort: 70000}, "--edge-https-public-port"},
		{EdgeOptions{Enabled: false, HTTPAddr: "nonsense", HTTPSAddr: "nonsense"}, ""},
	} {
		err := c.o.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.o, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: %v, want an error about %s", c.o, err, c.want)
		}
	}
	if got := (EdgeOptions{HTTPSAddr: "off"}).httpsAddr(); got != "" {
		t.Errorf("off: %q", got)
	}
}
