package ctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func routeCommand() *cli.Command {
	return &cli.Command{
		Name:  "route",
		Usage: "route HTTP requests that reach the edge of every node to a service or to fixed addresses",
		Description: "The most specific route wins: an exact host before a wildcard (*.example.com), then the\n" +
			"longest path. A host and path another route or site holds is refused, naming it. Examples:\n" +
			"  ccctl route create web --host web.localhost --service web --port 80\n" +
			"  ccctl route create api --host app.example.com --path /api/ --upstream 10.0.0.5:8080=1 --upstream 10.0.0.6:8080=2 --policy weighted\n" +
			"  ccctl route ls\n" +
			"  ccctl route update web --retries 3 --timeout 10s\n" +
			"  ccctl route create shop --host shop.example.com --service shop --port 8080 --tls auto --hsts 8760h\n" +
			"  ccctl route update api --tls example-com --no-https-redirect\n" +
			"  ccctl route rm web\n\n" +
			"HTTPS: --tls auto gets a certificate per host from the cluster's ACME CA (Let's Encrypt unless\n" +
			"`ccctl cluster settings --acme-directory` says otherwise); --tls NAME serves a certificate added\n" +
			"with `ccctl cert add`; --tls off serves HTTP only. With TLS, plain HTTP is redirected to HTTPS\n" +
			"(308) unless --no-https-redirect; --hsts sends Strict-Transport-Security.",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a route", ArgsUsage: "NAME", OnUsageError: usageError,
				Flags: routeFlags(false), Action: routeCreate,
			},
			{
				Name: "update", Usage: "change a route: only what the flags name", ArgsUsage: "NAME", OnUsageError: usageError,
				Description: "List flags (--host, --upstream, --header-up, --header-down, --cors-origin) replace\n" +
					"the whole list. --service replaces the upstreams and --upstream the service.\n" +
					"The update is refused, not lost, when someone else changed the route since ccctl read it.",
				Flags: routeFlags(true), Action: routeUpdate,
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list routes: hosts, path, target, policy", OnUsageError: usageError,
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the names"}},
				Action: routeList,
			},
			{
				Name: "inspect", Usage: "print a route as JSON, with its endpoints", ArgsUsage: "NAME", OnUsageError: usageError,
				Action: routeInspect,
			},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove routes", ArgsUsage: "NAME...", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					return eachArg(c, "route rm", 0, func(ctx context.Context, cl *Client, name string) error {
						resp, err := cl.Edge.RemoveRoute(ctx, &ccv1.RemoveRouteRequest{Name: name})
						if err != nil {
							return err
						}
						return done(c, name, resp)
					})
				},
			},
		},
	}
}

func routeFlags(update bool) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: "host", Usage: "match Host `NAME` (exact, or *.example.com); repeatable"},
		&cli.StringFlag{Name: "path", Usage: "match paths under `PREFIX` (default: /)"},
		&cli.StringFlag{Name: "service", Usage: "send to the running, healthy tasks of service `NAME` (with --port)"},
		&cli.StringFlag{Name: "port", Usage: "container `PORT` of --service"},
		&cli.StringSliceFlag{Name: "upstream", Usage: "send to `ADDR`[=WEIGHT] (HOST:PORT); repeatable"},
		&cli.StringFlag{Name: "policy", Usage: "choose an upstream by `POLICY`: round_robin, weighted, least_conn, ip_hash, hash_header:NAME or random_two"},
		&cli.StringFlag{Name: "health-path", Usage: "check every upstream with a GET of `PATH`"},
		&cli.StringFlag{Name: "health-interval", Usage: "check every `DURATION` (default: 30s)"},
		&cli.StringFlag{Name: "health-timeout", Usage: "a check taking longer than `DURATION` fails (default: 2s)"},
		&cli.StringFlag{Name: "health-fails", Usage: "`N` failed checks in a row take an upstream out (default: 3)"},
		&cli.StringFlag{Name: "health-passes", Usage: "`N` passed checks in a row put it back (default: 2)"},
		&cli.BoolFlag{Name: "strip-prefix", Usage: "remove the path prefix from the path sent upstream"},
		&cli.StringFlag{Name: "timeout", Usage: "wait `DURATION` for an upstream's response headers (default: 30s)"},
		&cli.StringFlag{Name: "retries", Usage: "try an idempotent request `N` more times on another upstream when connecting fails (default: 2)"},
		&cli.StringFlag{Name: "max-body", Usage: "refuse request bodies larger than `SIZE` with 413 (e.g. 10m; 0: no limit)"},
		&cli.StringSliceFlag{Name: "header-up", Usage: "set request header `K=V` sent upstream (K= removes it); repeatable"},
		&cli.StringSliceFlag{Name: "header-down", Usage: "set response header `K=V` sent to the client (K= removes it); repeatable"},
		&cli.StringSliceFlag{Name: "cors-origin", Usage: "allow browsers from `ORIGIN` (* for any); repeatable"},
		&cli.StringFlag{Name: "rate-limit", Usage: "allow each client address `RATE` requests (e.g. 100/s, 600/m; 0: none)"},
		&cli.StringFlag{Name: "rate-burst", Usage: "let a client burst up to `N` requests (default: the rate per second)"},
	}, tlsFlags()...)
}

// applyRouteFlags changes spec as the flags given say.
func applyRouteFlags(c *cli.Context, spec *ccv1.RouteSpec) error {
	if c.IsSet("host") {
		spec.Hosts = lowerHosts(c.StringSlice("host"))
	}
	if c.IsSet("path") {
		spec.PathPrefix = c.String("path")
	}
	if c.IsSet("service") {
		spec.Service, spec.Upstreams = c.String("service"), nil
	}
	if c.IsSet("port") {
		n, err := strconv.ParseUint(c.String("port"), 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("--port %q: a port from 1 to 65535", c.String("port"))
		}
		spec.Port = uint32(n)
	}
	if c.IsSet("upstream") {
		if c.IsSet("service") {
			return errors.New("give --service and --port, or --upstream, not both")
		}
		spec.Service, spec.Port, spec.Upstreams = "", 0, nil
		for _, u := range c.StringSlice("upstream") {
			addr, w, hasW := strings.Cut(u, "=")
			up := &ccv1.Upstream{Address: addr}
			if hasW {
				n, err := strconv.ParseUint(w, 10, 32)
				if err != nil {
					return fmt.Errorf("--upstream %q: use ADDR or ADDR=WEIGHT (e.g. 10.0.0.5:8080=2)", u)
				}
				up.Weight = uint32(n)
			}
			spec.Upstreams = append(spec.Upstreams, up)
		}
	}
	if c.IsSet("policy") {
		lb, h, err := parsePolicy("policy", c.String("policy"))
		if err != nil {
			return err
		}
		spec.LoadBalancing, spec.HashHeader = lb, h
	}
	if err := applyRouteHealthFlags(c, spec); err != nil {
		return err
	}
	if c.IsSet("strip-prefix") {
		spec.StripPrefix = c.Bool("strip-prefix")
	}
	if c.IsSet("timeout") {
		d, err := parseDuration("timeout", c.String("timeout"), false)
		if err != nil {
			return err
		}
		spec.Timeout = durationpb.New(d)
	}
	if c.IsSet("retries") {
		n, err := parseCount("retries", c.String("retries"), 10)
		if err != nil {
			return err
		}
		spec.Retries = uint32(n)
	}
	if c.IsSet("max-body") {
		n, err := parseSize("max-body", c.String("max-body"))
		if err != nil {
			return err
		}
		spec.MaxBodyBytes = n
	}
	for _, f := range []struct {
		flag string
		to   *map[string]string
	}{{"header-up", &spec.HeaderUp}, {"header-down", &spec.HeaderDown}} {
		if !c.IsSet(f.flag) {
			continue
		}
		m := map[string]string{}
		for _, kv := range c.StringSlice(f.flag) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("--%s %q: use NAME=VALUE (NAME= removes the header)", f.flag, kv)
			}
			m[strings.TrimSpace(k)] = v
		}
		*f.to = m
	}
	if c.IsSet("cors-origin") {
		spec.CorsOrigins = c.StringSlice("cors-origin")
	}
	if c.IsSet("rate-limit") {
		if r := strings.TrimSpace(c.String("rate-limit")); r == "0" || r == "" {
			spec.RateLimit = nil
		} else {
			rl, err := parseRate(r, spec.GetRateLimit().GetBurst())
			if err != nil {
				return err
			}
			spec.RateLimit = rl
		}
	}
	if c.IsSet("rate-burst") {
		if spec.RateLimit == nil {
			return errors.New("--rate-burst goes with --rate-limit (e.g. --rate-limit 100/s --rate-burst 200)")
		}
		n, err := parseCount("rate-burst", c.String("rate-burst"), 1<<31)
		if err != nil {
			return err
		}
		spec.RateLimit.Burst = uint32(n)
	}
	tls, err := applyTLSFlags(c, spec.GetTls())
	if err != nil {
		return err
	}
	spec.Tls = tls
	return nil
}

func applyRouteHealthFlags(c *cli.Context, spec *ccv1.RouteSpec) error {
	given := false
	for _, f := range []string{"health-path", "health-interval", "health-timeout", "health-fails", "health-passes"} {
		given = given || c.IsSet(f)
	}
	if !given {
		return nil
	}
	hc := spec.HealthCheck
	if hc == nil {
		hc = &ccv1.RouteHealthCheck{}
	}
	if c.IsSet("health-path") {
		hc.Path = c.String("health-path")
	}
	for _, d := range []struct {
		flag string
		to   **durationpb.Duration
	}{{"health-interval", &hc.Interval}, {"health-timeout", &hc.Timeout}} {
		if c.IsSet(d.flag) {
			v, err := parseDuration(d.flag, c.String(d.flag), true)
			if err != nil {
				return err
			}
			*d.to = durationpb.New(v)
		}
	}
	for _, n := range []struct {
		flag string
		to   *uint32
	}{{"health-fails", &hc.Fails}, {"health-passes", &hc.Passes}} {
		if c.IsSet(n.flag) {
			v, err := parseCount(n.flag, c.String(n.flag), 100)
			if err != nil {
				return err
			}
			*n.to = uint32(v)
		}
	}
	if hc.Path == "" {
		return errors.New("the health check needs --health-path PATH (e.g. /health)")
	}
	spec.HealthCheck = hc
	return nil
}

func oneName(c *cli.Context, verb, example string) (string, error) {
	if c.NArg() != 1 || c.Args().First() == "" {
		return "", fmt.Errorf("%s needs one NAME (e.g. %s)", verb, example)
	}
	return c.Args().First(), nil
}

func routeCreate(c *cli.Context) error {
	name, err := oneName(c, "route create", "ccctl route create web --host web.localhost --service web --port 80")
	if err != nil {
		return err
	}
	if !c.IsSet("host") {
		return fmt.Errorf("route create needs --host (e.g. ccctl route create %s --host %s.localhost --service %s --port 80)", name, name, name)
	}
	if !c.IsSet("service") && !c.IsSet("upstream") {
		return errors.New("route create needs --service SVC --port N, or --upstream ADDR[=WEIGHT]")
	}
	spec := &ccv1.RouteSpec{}
	if err := applyRouteFlags(c, spec); err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Edge.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: name, Spec: spec})
		if err != nil {
			return err
		}
		return done(c, resp.GetRoute().GetName(), resp.GetRoute())
	})
}

func routeUpdate(c *cli.Context) error {
	name, err := oneName(c, "route update", "ccctl route update web --retries 3")
	if err != nil {
		return err
	}
	if err := checkTLSFlagValues(c); err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		cur, err := cl.Edge.GetRoute(ctx, &ccv1.GetRouteRequest{Name: name})
		if err != nil {
			return err
		}
		spec := proto.Clone(cur.GetRoute().GetSpec()).(*ccv1.RouteSpec)
		if spec == nil {
			spec = &ccv1.RouteSpec{}
		}
		if err := applyRouteFlags(c, spec); err != nil {
			return err
		}
		resp, err := cl.Edge.UpdateRoute(ctx, &ccv1.UpdateRouteRequest{Name: name, Spec: spec, Version: cur.GetRoute().GetVersion()})
		if err != nil {
			return err
		}
		return done(c, name, resp.GetRoute())
	})
}

// routeTarget prints where a route sends: "service web:80" or the
// addresses, with weights.
func routeTarget(s *ccv1.RouteSpec) string {
	if s.GetService() != "" {
		return fmt.Sprintf("service %s:%d", s.Service, s.Port)
	}
	var out []string
	for _, u := range s.GetUpstreams() {
		a := u.Address
		if u.Weight > 0 {
			a += fmt.Sprintf("=%d", u.Weight)
		}
		out = append(out, a)
	}
	return strings.Join(out, ",")
}

func routeList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("route ls takes no arguments, got %q", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Edge.ListRoutes(ctx, &ccv1.ListRoutesRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		if c.Bool("quiet") {
			for _, r := range resp.Routes {
				fmt.Fprintln(c.App.Writer, r.Name)
			}
			return nil
		}
		w := table(c)
		fmt.Fprintf(w, "NAME\tHOSTS\tPATH\tTARGET\tPOLICY\tTLS\tSET\tVERSION\n")
		for _, r := range resp.Routes {
			s := r.GetSpec()
			policy := formatPolicy(s.GetLoadBalancing(), s.GetHashHeader())
			if policy == "" {
				policy = "round_robin"
			}
			set := s.GetSet()
			if set == "" {
				set = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Name, strings.Join(s.GetHosts(), ","), s.GetPathPrefix(), shorten(routeTarget(s), 60), policy,
				tlsWord(s.GetTls()), set, r.Version)
		}
		return w.Flush()
	})
}

func routeInspect(c *cli.Context) error {
	name, err := oneName(c, "route inspect", "ccctl route inspect web")
	if err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Edge.GetRoute(ctx, &ccv1.GetRouteRequest{Name: name})
		if err != nil {
			return err
		}
		return printJSON(c, resp.GetRoute())
	})
}

func edgeCommand() *cli.Command {
	return &cli.Command{
		Name:  "edge",
		Usage: "manage the edge's routes as a file: the seed's [[proxy.upstreams]] and [[proxy.routes]] format",
		Subcommands: []*cli.Command{
			{
				Name: "apply", Usage: "make the routes of a file's set what the file says: creates, updates and removes", ArgsUsage: "FILE", OnUsageError: usageError,
				Description: "The routes belong to a set named after the file (edge.toml: set edge); routes of the\n" +
					"set that the file no longer lists are removed, others are left alone. Examples:\n" +
					"  ccctl edge apply edge.toml --dry-run\n  ccctl edge apply edge.toml",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "dry-run", Usage: "only print what would change"},
					&cli.StringFlag{Name: "set", Usage: "name the set `NAME` (default: the file's base name)"},
				},
				Action: edgeApply,
			},
			{
				Name: "export", Usage: "write every route in the edge file format", OnUsageError: usageError,
				Description: "Examples:\n  ccctl edge export\n  ccctl edge export -o edge.toml",
				Flags:       []cli.Flag{&cli.StringFlag{Name: "file", Aliases: []string{"o"}, Usage: "write to `FILE` instead of standard output"}},
				Action:      edgeExport,
			},
		},
	}
}

func edgeApply(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("edge apply needs one FILE (e.g. ccctl edge apply edge.toml)")
	}
	file := c.Args().First()
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %v", file, unwrapPath(err))
	}
	set := c.String("set")
	if set == "" {
		if set, err = setName(file); err != nil {
			return err
		}
	}
	routes, err := parseEdgeFile(file, data)
	if err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Edge.ApplyRoutes(ctx, &ccv1.ApplyRoutesRequest{Set: set, Routes: routes, DryRun: dry})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		w := c.App.Writer
		for _, l := range []struct {
			mark  string
			names []string
		}{{"+", resp.Created}, {"~", resp.Updated}, {"-", resp.Removed}} {
			for _, n := range l.names {
				fmt.Fprintf(w, "%s route %s\n", l.mark, n)
			}
		}
		verb := ""
		if dry {
			verb = "would be "
		}
		_, err = fmt.Fprintf(w, "set %s: %d %screated, %d %supdated, %d %sremoved, %d unchanged\n", set,
			len(resp.Created), verb, len(resp.Updated), verb, len(resp.Removed), verb, len(resp.Unchanged))
		return err
	})
}

func edgeExport(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("edge export takes no arguments, got %q (write to a file with -o FILE)", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Edge.ListRoutes(ctx, &ccv1.ListRoutesRequest{})
		if err != nil {
			return err
		}
		data, err := exportEdgeFile(resp.Routes)
		if err != nil {
			return err
		}
		if f := c.String("file"); f != "" && f != "-" {
			return os.WriteFile(f, data, 0o644)
		}
		_, err = c.App.Writer.Write(data)
		return err
	})
}

// siteAge prints when a site's current version was deployed.
func siteAge(s *ccv1.Site, now time.Time) string {
	for _, v := range s.GetVersions() {
		if v.Version == s.Current {
			return ago(v.DeployedAt, now)
		}
	}
	return "-"
}
