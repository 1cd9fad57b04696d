package edgediff

import (
	"fmt"
	"math/rand"
	"testing"

	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestDiff(t *testing.T) {
	r := func(name string, v uint64) *ccv1.EdgeRoute { return &ccv1.EdgeRoute{Name: name, Version: v} }
	s := func(name, d string) *ccv1.EdgeSite { return &ccv1.EdgeSite{Name: name, BundleDigest: d} }
	cases := []struct {
		name     string
		old, cur *ccv1.EdgeConfig
		want     string // "" means nil
	}{
		{name: "equal", old: &ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{r("a", 1)}}, cur: &ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{r("a", 1)}}},
		{name: "both empty", old: &ccv1.EdgeConfig{}, cur: &ccv1.EdgeConfig{}},
		{name: "route added and changed", old: &ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{r("b", 1)}},
			cur:  &ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{r("a", 1), r("b", 2)}},
			want: "routes+[a b] routes-[] sites+[] sites-[] relays=false"},
		{name: "removed", old: &ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{r("a", 1)}, Sites: []*ccv1.EdgeSite{s("d", "x")}},
			cur:  &ccv1.EdgeConfig{},
			want: "routes+[] routes-[a] sites+[] sites-[d] relays=false"},
		{name: "site version", old: &ccv1.EdgeConfig{Sites: []*ccv1.EdgeSite{s("d", "x")}},
			cur:  &ccv1.EdgeConfig{Sites: []*ccv1.EdgeSite{s("d", "y")}},
			want: "routes+[] routes-[] sites+[d] sites-[] relays=false"},
		{name: "relays", old: &ccv1.EdgeConfig{Relays: []*ccv1.Relay{{ContainerId: "a", Port: 80}}},
			cur:  &ccv1.EdgeConfig{},
			want: "routes+[] routes-[] sites+[] sites-[] relays=true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := Diff(c.old, c.cur)
			if c.want == "" {
				if ch != nil {
					t.Fatalf("want no changes, got %v", ch)
				}
				return
			}
			if ch == nil {
				t.Fatal("want changes, got none")
			}
			var up, ups []string
			for _, x := range ch.UpdatedRoutes {
				up = append(up, x.Name)
			}
			for _, x := range ch.UpdatedSites {
				ups = append(ups, x.Name)
			}
			got := fmt.Sprintf("routes+%v routes-%v sites+%v sites-%v relays=%v", up, ch.RemovedRoutes, ups, ch.RemovedSites, ch.SetRelays)
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			if applied := Apply(c.old, ch); !proto.Equal(applied, c.cur) {
				t.Errorf("Apply(old, Diff(old, new)) = %v, want %v", applied, c.cur)
			}
		})
	}
}

// Apply(old, Diff(old, new)) is new, for random configurations.
func TestDiffApplyRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	gen := func() *ccv1.EdgeConfig {
		cfg := &ccv1.EdgeConfig{}
		for _, name := range []string{"a", "b", "c", "d"} {
			if rng.Intn(2) == 0 {
				cfg.Routes = append(cfg.Routes, &ccv1.EdgeRoute{Name: name, Version: uint64(rng.Intn(3))})
			}
			if rng.Intn(2) == 0 {
				cfg.Sites = append(cfg.Sites, &ccv1.EdgeSite{Name: name, Version: uint32(rng.Intn(3))})
			}
		}
		for _, name := range []string{"x", "y", "z"} {
			if rng.Intn(2) == 0 {
				cfg.Certs = append(cfg.Certs, &ccv1.EdgeCert{Name: name, Version: uint64(rng.Intn(3))})
			}
		}
		for i := 0; i < rng.Intn(3); i++ {
			cfg.Challenges = append(cfg.Challenges, &ccv1.ACMEChallenge{Type: "http-01", Host: "h", Token: fmt.Sprint(rng.Intn(2))})
		}
		switch rng.Intn(3) {
		case 1:
			cfg.Tls = &ccv1.EdgeTLSSettings{Http3: true}
		case 2:
			cfg.Tls = &ccv1.EdgeTLSSettings{DefaultCert: "d"}
		}
		for i := 0; i < rng.Intn(3); i++ {
			cfg.Relays = append(cfg.Relays, &ccv1.Relay{ContainerId: fmt.Sprint(i), Port: uint32(rng.Intn(2))})
		}
		return cfg
	}
	for i := 0; i < 2000; i++ {
		old, cur := gen(), gen()
		ch := Diff(old, cur)
		got := old
		if ch != nil {
			got = Apply(old, ch)
		}
		if !proto.Equal(got, cur) {
			t.Fatalf("old %v\nnew %v\ndiff %v\napplied %v", old, cur, ch, got)
		}
	}
}

func TestDiffTLS(t *testing.T) {
	c := func(name string, v uint64) *ccv1.EdgeCert {
		return &ccv1.EdgeCert{Name: name, Version: v, ChainPem: []byte("chain"), KeyPem: []byte("key")}
	}
	ch1 := &ccv1.ACMEChallenge{Type: "http-01", Host: "a.example", Token: "t1", KeyAuthorization: "t1.k"}
	ch2 := &ccv1.ACMEChallenge{Type: "tls-alpn-01", Host: "b.example", CertPem: []byte("c"), KeyPem: []byte("k")}
	old := &ccv1.EdgeConfig{
		Certs:      []*ccv1.EdgeCert{c("a", 1), c("b", 1), c("gone", 1)},
		Challenges: []*ccv1.ACMEChallenge{ch1},
		Tls:        &ccv1.EdgeTLSSettings{DefaultCert: "a"},
	}
	cur := &ccv1.EdgeConfig{
		Certs:      []*ccv1.EdgeCert{c("a", 1), c("b", 2), c("new", 1)},
		Challenges: []*ccv1.ACMEChallenge{ch1, ch2},
		Tls:        &ccv1.EdgeTLSSettings{DefaultCert: "a", Http3: true},
	}
	ch := Diff(old, cur)
	if ch == nil {
		t.Fatal("no changes")
	}
	var up []string
	for _, x := range ch.UpdatedCerts {
		up = append(up, x.Name)
	}
	if got := fmt.Sprintf("certs+%v certs-%v challenges=%v(%d) tls=%v", up, ch.RemovedCerts, ch.SetChallenges, len(ch.Challenges), ch.Tls.GetHttp3()); got != "certs+[b new] certs-[gone] challenges=true(2) tls=true" {
		t.Errorf("got %s", got)
	}
	if len(ch.UpdatedRoutes)+len(ch.UpdatedSites)+len(ch.RemovedRoutes)+len(ch.RemovedSites) != 0 || ch.SetRelays {
		t.Errorf("routes, sites or relays changed: %v", ch)
	}
	if got := Apply(old, ch); !proto.Equal(got, cur) {
		t.Errorf("applied %v\nwant %v", got, cur)
	}

	// Only the challenges go away: sent whole, as none.
	cur2 := proto.Clone(old).(*ccv1.EdgeConfig)
	cur2.Challenges = nil
	ch = Diff(old, cur2)
	if ch == nil || !ch.SetChallenges || len(ch.Challenges) != 0 || ch.Tls != nil || len(ch.UpdatedCerts) != 0 {
		t.Fatalf("challenges removed: %v", ch)
	}
	if got := Apply(old, ch); !proto.Equal(got, cur2) {
		t.Errorf("applied %v\nwant %v", got, cur2)
	}

	// Settings removed: sent as empty settings, applied as none.
	cur3 := proto.Clone(old).(*ccv1.EdgeConfig)
	cur3.Tls = nil
	ch = Diff(old, cur3)
	if ch == nil || ch.Tls == nil || proto.Size(ch.Tls) != 0 {
		t.Fatalf("settings removed: %v", ch)
	}
	if got := Apply(old, ch); !proto.Equal(got, cur3) {
		t.Errorf("applied %v\nwant %v", got, cur3)
	}

	// Apply leaves the configuration it is given alone.
	before := proto.Clone(old)
	Apply(old, Diff(old, cur))
	if !proto.Equal(before, old) {
		t.Error("Apply changed its input")
	}
}
