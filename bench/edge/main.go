// Command edge runs the agent's edge (agent/edge) alone for bench/edge.sh:
// one route to a fixed upstream and, with -static-dir, one site. It only
// listens where it is told and talks to the upstream it is given.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/containercodes/cc/agent/edge"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "edge listen address")
	upstream := flag.String("upstream", "127.0.0.1:18081", "upstream address of the proxy route")
	host := flag.String("host", "proxy.bench", "host of the proxy route")
	staticDir := flag.String("static-dir", "", "directory served as a site on -static-host (net/http FileServer stand-in until agent/edge/static is in the tree)")
	staticHost := flag.String("static-host", "static.bench", "host of the site")
	verbose := flag.Bool("v", false, "access log to stderr")
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	s, err := edge.New(edge.Options{
		HTTPAddr: *listen,
		Log:      log,
		SiteHandler: func(dir string, _ *ccv1.SiteSpec) (http.Handler, error) {
			return http.FileServer(http.Dir(dir)), nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
	routes := []*ccv1.EdgeRoute{{
		Name:      "bench",
		Spec:      &ccv1.RouteSpec{Hosts: []string{*host}},
		Endpoints: []*ccv1.Endpoint{{Id: *upstream, Address: *upstream, Weight: 1}},
	}}
	var sites []*ccv1.EdgeSite
	dirs := map[string]string{}
	if *staticDir != "" {
		sites = append(sites, &ccv1.EdgeSite{Name: "static", Spec: &ccv1.SiteSpec{Hosts: []string{*staticHost}}, BundleDigest: "bench"})
		dirs["bench"] = *staticDir
	}
	s.Update(routes, sites, dirs)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "edge: serving on %s (route %s → %s)\n", s.Addr(), *host, *upstream)
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}
