package ctl

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestParseHSTS(t *testing.T) {
	for in, want := range map[string]uint32{"0": 0, "8760h": 31536000, "31536000s": 31536000, "31536000": 31536000, "365d": 31536000,
		"1h30m": 5400, " 10m ": 600, "0s": 0, "730d": 63072000, "17520h": 63072000} {
		if got, err := parseHSTS("--hsts", in); err != nil || got != want {
			t.Errorf("parseHSTS(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"1y":          `--hsts "1y": use a duration (e.g. 8760h, 365d or 31536000s; 0: no header)`,
		"":            `--hsts "": use a duration`,
		"-1h":         `--hsts "-1h": use a duration of 0 or more`,
		"1.5s":        `--hsts "1.5s": use whole seconds`,
		"500ms":       `--hsts "500ms": use whole seconds`,
		"4294967296":  `--hsts "4294967296": too long`,
		"731d":        `--hsts "731d": at most two years (17520h, 730d or 63072000s)`,
		"63072001":    `--hsts "63072001": at most two years`,
		"200000d":     `--hsts "200000d": too long`,
		"2000000h":    `--hsts "2000000h": too long`,
		"xd":          `--hsts "xd": use a duration`,
		"on":          `--hsts "on": use a duration`,
		"8760h extra": `--hsts "8760h extra": use a duration`,
	} {
		if _, err := parseHSTS("--hsts", in); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("parseHSTS(%q): %v; want %q", in, err, want)
		}
	}
	for _, n := range []uint32{1, 59, 60, 3600, 5400, 5401, 31536000, 63072000} {
		if got, err := parseHSTS("--hsts", formatHSTS(n)); err != nil || got != n {
			t.Errorf("formatHSTS(%d) = %q reads back as %d, %v", n, formatHSTS(n), got, err)
		}
	}
	if got := formatHSTS(31536000); got != "8760h" {
		t.Errorf("formatHSTS(31536000) = %q", got)
	}
}

func TestRouteTLSFlags(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	base := []string{"route", "create", "shop", "--host", "shop.example.com", "--service", "shop", "--port", "80"}
	for _, c := range []struct {
		flags []string
		want  *ccv1.EdgeTLSOptions
	}{
		{nil, nil},
		{[]string{"--tls", "auto"}, &ccv1.EdgeTLSOptions{Cert: "auto"}},
		{[]string{"--tls", "AUTO", "--hsts", "8760h", "--hsts-subdomains"}, &ccv1.EdgeTLSOptions{Cert: "auto", HstsMaxAgeSeconds: 31536000, HstsIncludeSubdomains: true}},
		{[]string{"--tls", "example-com", "--no-https-redirect", "--hsts", "31536000s"}, &ccv1.EdgeTLSOptions{Cert: "example-com", NoRedirect: true, HstsMaxAgeSeconds: 31536000}},
		{[]string{"--tls", "off"}, nil},
		{[]string{"--tls", "off", "--hsts", "0"}, nil},
		{[]string{"--hsts", "0", "--no-https-redirect=false"}, nil},
	} {
		r := runCtl(conn, append(base, c.flags...)...)
		if r.code != 0 {
			t.Errorf("%q: %+v", c.flags, r)
			continue
		}
		f.locked(func() {
			if got := f.edge.create.GetSpec().GetTls(); !proto.Equal(got, c.want) {
				t.Errorf("%q: tls %v, want %v", c.flags, got, c.want)
			}
		})
	}
	for want, flags := range map[string][]string{
		`ccctl: --tls "on": use auto (a certificate from the cluster's ACME CA), the name of a certificate (see ccctl cert ls), or off`: {"--tls", "on"},
		`ccctl: --tls "": use auto`:                                         {"--tls", ""},
		`ccctl: --tls "my cert": not a certificate name`:                    {"--tls", "my cert"},
		"ccctl: --hsts goes with HTTPS: add --tls auto":                     {"--hsts", "8760h"},
		"ccctl: --no-https-redirect goes with HTTPS: add --tls auto":        {"--no-https-redirect"},
		"ccctl: --hsts goes with HTTPS: drop it, or use --tls auto":         {"--tls", "off", "--hsts", "1h"},
		"ccctl: --no-https-redirect goes with HTTPS: drop it":               {"--tls", "off", "--no-https-redirect"},
		"ccctl: --hsts-subdomains goes with --hsts (e.g. --hsts 8760h":      {"--tls", "auto", "--hsts-subdomains"},
		`ccctl: --hsts "1y": use a duration (e.g. 8760h, 365d or 31536000s`: {"--tls", "auto", "--hsts", "1y"},
	} {
		r := runCtl(conn, append(base, flags...)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%q: %+v\nwant %q", flags, r, want)
		}
	}
}

func TestRouteUpdateTLSKeepsTheRest(t *testing.T) {
	f := &fakeAPI{}
	spec := &ccv1.RouteSpec{Hosts: []string{"shop.example.com"}, PathPrefix: "/", Service: "shop", Port: 80,
		Tls: &ccv1.EdgeTLSOptions{Cert: "auto", HstsMaxAgeSeconds: 3600, HstsIncludeSubdomains: true}}
	f.edge.route = &ccv1.Route{Name: "shop", Version: 2, Spec: spec}
	conn := startFake(t, f)
	for _, c := range []struct {
		flags []string
		want  *ccv1.EdgeTLSOptions
	}{
		{[]string{"--retries", "1"}, spec.Tls},
		{[]string{"--tls", "example-com"}, &ccv1.EdgeTLSOptions{Cert: "example-com", HstsMaxAgeSeconds: 3600, HstsIncludeSubdomains: true}},
		{[]string{"--no-https-redirect"}, &ccv1.EdgeTLSOptions{Cert: "auto", NoRedirect: true, HstsMaxAgeSeconds: 3600, HstsIncludeSubdomains: true}},
		{[]string{"--hsts", "0"}, &ccv1.EdgeTLSOptions{Cert: "auto"}},
		{[]string{"--hsts-subdomains=false"}, &ccv1.EdgeTLSOptions{Cert: "auto", HstsMaxAgeSeconds: 3600}},
		{[]string{"--tls", "off"}, nil},
	} {
		if r := runCtl(conn, append([]string{"route", "update", "shop"}, c.flags...)...); r.code != 0 {
			t.Errorf("%q: %+v", c.flags, r)
			continue
		}
		f.locked(func() {
			if got := f.edge.update.GetSpec().GetTls(); !proto.Equal(got, c.want) {
				t.Errorf("%q: tls %v, want %v", c.flags, got, c.want)
			}
			if f.edge.update.GetSpec().GetService() != "shop" {
				t.Errorf("%q: lost the rest of the spec: %v", c.flags, f.edge.update.GetSpec())
			}
		})
	}
	// A typo is reported before the route is read.
	if r := runCtl(conn, "route", "update", "nope", "--hsts", "forever"); r.code != 1 || !strings.HasPrefix(r.stderr, `ccctl: --hsts "forever"`) {
		t.Errorf("update --hsts forever: %+v", r)
	}
}

func TestSiteDeployTLS(t *testing.T) {
	f := &fakeAPI{}
	f.edge.site = &ccv1.Site{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"docs.example.com"}, PathPrefix: "/", Spa: true, CacheControl: "no-cache"}}
	conn := startFake(t, f)
	dir := t.TempDir()
	writeFile(t, dir, "index.html", []byte("hi"))
	r := runCtl(conn, "site", "deploy", "docs", dir, "--tls", "auto", "--hsts", "365d", "-q")
	if r.code != 0 {
		t.Fatalf("site deploy --tls auto: %+v", r)
	}
	want := &ccv1.SiteSpec{Hosts: []string{"docs.example.com"}, PathPrefix: "/", Spa: true, CacheControl: "no-cache",
		Tls: &ccv1.EdgeTLSOptions{Cert: "auto", HstsMaxAgeSeconds: 31536000}}
	f.locked(func() {
		if !proto.Equal(f.edge.deployHdr.GetSpec(), want) {
			t.Errorf("deploy spec %v, want %v", f.edge.deployHdr.GetSpec(), want)
		}
		f.edge.site.Spec = want
	})
	// --host on an existing site keeps its other settings, TLS too.
	if r := runCtl(conn, "site", "deploy", "docs", dir, "--host", "docs.example.org", "-q"); r.code != 0 {
		t.Fatalf("site deploy --host: %+v", r)
	}
	f.locked(func() {
		if got := f.edge.deployHdr.GetSpec(); got.GetTls().GetCert() != "auto" || !got.GetSpa() || got.GetHosts()[0] != "docs.example.org" {
			t.Errorf("deploy --host sent %v", got)
		}
	})
	if r := runCtl(conn, "site", "deploy", "docs", dir, "--tls", "yes"); r.code != 1 || !strings.HasPrefix(r.stderr, `ccctl: --tls "yes": use auto`) {
		t.Errorf("site deploy --tls yes: %+v", r)
	}
	if r := runCtl(conn, "site", "deploy", "docs", dir, "--tls", "off", "--hsts-subdomains"); r.code != 1 || !strings.HasPrefix(r.stderr, "ccctl: --hsts-subdomains goes with HTTPS") {
		t.Errorf("site deploy --tls off --hsts-subdomains: %+v", r)
	}
	// A new site still needs --host; with it, it starts from nothing.
	f.locked(func() { f.edge.site = nil })
	if r := runCtl(conn, "site", "deploy", "new", dir, "--tls", "auto"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("deploy of a new site without --host: %+v", r)
	}
	if r := runCtl(conn, "site", "deploy", "new", dir, "--host", "new.example.com", "--tls", "example-com", "-q"); r.code != 0 {
		t.Fatalf("deploy of a new site: %+v", r)
	}
	f.locked(func() {
		want := &ccv1.SiteSpec{Hosts: []string{"new.example.com"}, Tls: &ccv1.EdgeTLSOptions{Cert: "example-com"}}
		if !proto.Equal(f.edge.deployHdr.GetSpec(), want) {
			t.Errorf("deploy spec %v, want %v", f.edge.deployHdr.GetSpec(), want)
		}
	})
}

const tlsEdgeFile = `[[proxy.upstreams]]
name = "shop"
  [[proxy.upstreams.servers]]
  service = "shop"
  port = 80

[[proxy.routes]]
host = "shop.example.com"
upstream = "shop"
tls = "auto"
https_redirect = false
hsts = "8760h"
hsts_subdomains = true

[[proxy.routes]]
name = "api"
host = "api.example.com"
upstream = "shop"
tls = "example-com"

[[proxy.routes]]
name = "plain"
host = "plain.example.com"
upstream = "shop"
tls = "off"
`

func TestEdgeFileTLS(t *testing.T) {
	routes, err := parseEdgeFile("f.toml", []byte(tlsEdgeFile))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*ccv1.EdgeTLSOptions{
		"shop": {Cert: "auto", NoRedirect: true, HstsMaxAgeSeconds: 31536000, HstsIncludeSubdomains: true},
		"api":  {Cert: "example-com"},
	}
	for _, r := range routes {
		if !proto.Equal(r.Spec.Tls, want[r.Name]) {
			t.Errorf("route %s: tls %v, want %v", r.Name, r.Spec.Tls, want[r.Name])
		}
	}
	out, err := exportEdgeFile(routes)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"tls = 'auto'", "https_redirect = false", "hsts = '8760h'", "hsts_subdomains = true", "tls = 'example-com'"} {
		if !strings.Contains(string(out), line) {
			t.Errorf("export lacks %s:\n%s", line, out)
		}
	}
	again, err := parseEdgeFile("f.toml", out)
	if err != nil || len(again) != len(routes) {
		t.Fatalf("export does not read back: %v\n%s", err, out)
	}
	for i := range routes {
		if !proto.Equal(routes[i], again[i]) {
			t.Errorf("round trip: %v, want %v", again[i], routes[i])
		}
	}

	route := "[[proxy.upstreams]]\nname = \"x\"\n[[proxy.upstreams.servers]]\naddress = \"a:1\"\n[[proxy.routes]]\nhost = \"a\"\nupstream = \"x\"\n"
	for keys, want := range map[string]string{
		"tls = \"on\"\n":                            `f.toml line 5: tls = "on": use auto (a certificate from the cluster's ACME CA), the name of a certificate`,
		"hsts = \"8760h\"\n":                        `f.toml line 5: hsts goes with HTTPS: add tls = "auto"`,
		"https_redirect = true\n":                   `f.toml line 5: https_redirect goes with HTTPS`,
		"tls = \"off\"\nhsts_subdomains = true\n":   `f.toml line 5: hsts_subdomains goes with HTTPS`,
		"tls = \"auto\"\nhsts = \"1y\"\n":           `f.toml line 5: hsts = "1y": use a duration`,
		"tls = \"auto\"\nhsts = 3600\n":             `f.toml line 9: proxy.routes.hsts:`,
		"tls = \"auto\"\nhsts_subdomains = true\n":  `f.toml line 5: hsts_subdomains goes with hsts: add hsts = "8760h"`,
		"tls = \"auto\"\nredirect = false\n":        `f.toml line 9: unknown key proxy.routes.redirect: [[proxy.upstreams]] takes`,
		"tls = \"auto\"\nhttps_redirect = \"no\"\n": `f.toml line 9: proxy.routes.https_redirect:`,
	} {
		if _, err := parseEdgeFile("f.toml", []byte(route+keys)); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v\nwant %q", keys, err, want)
		}
	}
	if _, err := parseEdgeFile("f.toml", []byte(route+"tls = \"off\"\nhsts = \"0\"\n")); err != nil {
		t.Errorf("tls off with hsts 0: %v", err)
	}
}

func TestEdgeApplySendsTLS(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	file := writeFile(t, t.TempDir(), "shop.toml", []byte(tlsEdgeFile))
	if r := runCtl(conn, "edge", "apply", file); r.code != 0 {
		t.Fatalf("edge apply: %+v", r)
	}
	f.locked(func() {
		for _, r := range f.edge.apply.GetRoutes() {
			if r.Name == "shop" && r.Spec.GetTls().GetHstsMaxAgeSeconds() != 31536000 {
				t.Errorf("apply sent %v", r)
			}
		}
	})
}
