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
