package ctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name: "audit", Usage: "read the audit trail: who changed what, when, from where (admin tokens)",
		Subcommands: []*cli.Command{
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list audit events, oldest first (the newest --limit of them)", Action: auditList, OnUsageError: usageError,
				Description: "Every API call that changed the cluster's state (or tried to) is recorded with who made it\n" +
					"(token id and role, node or server), the method, the target, the outcome, the source address\n" +
					"and the time. Calls refused before that (a bad token, a role that may not call the method) are\n" +
					"in each server's audit_file only (docs/audit.md).\n\n" +
					"Examples:\n" +
					"  ccctl audit ls --since 1h\n" +
					"  ccctl audit ls --principal 3f9c2a1b --method SubmitJob\n" +
					"  ccctl audit ls -f -o json",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "since", Usage: "only events since `WHEN`: a duration before now (1h, 30m) or a time (2026-01-02T15:04:05Z)"},
					&cli.StringFlag{Name: "principal", Usage: "only events of this token, node or server `ID`"},
					&cli.StringFlag{Name: "method", Usage: "only events of this `METHOD` (SubmitJob, JobService/SubmitJob or the full name)"},
					&cli.IntFlag{Name: "limit", Value: 100, Usage: "list at most `N` events (at most 1000)"},
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "then print new events as they are recorded, until interrupted"},
				},
			},
		},
	}
}

// parseSince reads --since: a duration before now or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: a duration must be positive", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: use a duration (1h, 30m) or an RFC 3339 time (2026-01-02T15:04:05Z)", s)
}

func auditList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("audit ls takes no arguments, got %q", c.Args().Slice())
	}
	req := &ccv1.ListAuditRequest{Principal: c.String("principal"), Method: c.String("method"), Limit: int32(c.Int("limit"))}
	if c.Int("limit") < 1 || c.Int("limit") > 1000 {
		return fmt.Errorf("--limit %d: use 1 to 1000", c.Int("limit"))
	}
	if s := c.String("since"); s != "" {
		t, err := parseSince(s, time.Now())
		if err != nil {
			return err
		}
		req.Since = timestamppb.New(t)
	}
	list := func(ctx context.Context, cl *Client) (*ccv1.ListAuditResponse, error) {
		resp, err := cl.Audit.ListAudit(ctx, req)
		if err != nil {
			return nil, err
		}
		slices.Reverse(resp.Events) // oldest first, as a log reads
		return resp, nil
	}
	if !c.Bool("follow") {
		return call(c, func(ctx context.Context, cl *Client) error {
			resp, err := list(ctx, cl)
			if err != nil {
				return err
			}
			if jsonOut(c) {
				return printJSON(c, resp)
			}
			w := table(c)
			fmt.Fprintln(w, auditHeader)
			for _, ev := range resp.Events {
				fmt.Fprintln(w, auditRow(ev))
			}
			return w.Flush()
		})
	}
	return callStream(c, true, nil, func(ctx context.Context, cl *Client) error {
		lctx, cancel := context.WithTimeout(ctx, globalTimeout(c))
		resp, err := list(lctx, cl)
		cancel()
		if err != nil {
			return err
		}
		var after uint64
		w := table(c)
		if !jsonOut(c) {
			fmt.Fprintln(w, auditHeader)
		}
		for _, ev := range resp.Events {
			after = max(after, ev.Index)
			if err := printAuditEvent(c, w, ev); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		stream, err := cl.Audit.WatchAudit(ctx, &ccv1.WatchAuditRequest{Principal: req.Principal, Method: req.Method, AfterIndex: after})
		if err != nil {
			return err
		}
		return recvAll(stream, func(m *ccv1.WatchAuditResponse) error {
			if err := printAuditEvent(c, w, m.GetEvent()); err != nil {
				return err
			}
			return w.Flush()
		})
	})
}

const auditHeader = "TIME\tPRINCIPAL\tMETHOD\tTARGET\tOUTCOME\tSOURCE"

// printAuditEvent prints one event of a follow: a table row, or a JSON line.
func printAuditEvent(c *cli.Context, w interface{ Write([]byte) (int, error) }, ev *ccv1.AuditEvent) error {
	if jsonOut(c) {
		data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.App.Writer, string(data))
		return err
	}
	_, err := fmt.Fprintln(w, auditRow(ev))
	return err
}

func auditRow(ev *ccv1.AuditEvent) string {
	target := ev.Target
	if target == "" {
		target = "-"
	}
	return strings.Join([]string{when(ev.Time), auditPrincipal(ev), auditMethod(ev.Method), shorten(target, 40), auditOutcome(ev), orDash(ev.Source)}, "\t")
}

// auditPrincipal names who made a call: "<token id> (<role>)", "node <id>"
// or "server <id>".
func auditPrincipal(ev *ccv1.AuditEvent) string {
	switch {
	case ev.TokenId != "" && ev.Role != ccv1.Role_ROLE_UNSPECIFIED:
		return ev.TokenId + " (" + enumWord(ev.Role.String(), "ROLE_") + ")"
	case ev.TokenId != "":
		return ev.TokenId
	case ev.NodeId != "":
		return "node " + ev.NodeId
	case ev.ServerId != "":
		return "server " + ev.ServerId
	}
	return "-"
}

// auditMethod is "Service/Method" of "/cc.v1.Service/Method".
func auditMethod(full string) string {
	svc, method, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	if !ok {
		return orDash(full)
	}
	return svc[strings.LastIndex(svc, ".")+1:] + "/" + method
}

func auditOutcome(ev *ccv1.AuditEvent) string {
	if ev.Error == "" {
		return orDash(ev.Outcome)
	}
	return shorten(ev.Outcome+": "+ev.Error, 60)
}

// parseAuditFlags reads --audit-max-age and --audit-max-events: the
// retention they change, or nil when neither is given.
func parseAuditFlags(c *cli.Context) (*ccv1.AuditSettings, error) {
	var out *ccv1.AuditSettings
	if c.IsSet("audit-max-age") {
		d, err := time.ParseDuration(strings.TrimSpace(c.String("audit-max-age")))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--audit-max-age %q: a duration such as 720h (0: the default, 90 days)", c.String("audit-max-age"))
		}
		out = &ccv1.AuditSettings{MaxAge: durationpb.New(d)}
	}
	if c.IsSet("audit-max-events") {
		n, err := strconv.ParseInt(strings.TrimSpace(c.String("audit-max-events")), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--audit-max-events %q: a number of events (0: the default, 100000)", c.String("audit-max-events"))
		}
		if out == nil {
			out = &ccv1.AuditSettings{}
		}
		out.MaxEvents = proto.Int64(n)
	}
	return out, nil
}

// printAuditSettings prints the audit retention, saying which is the
// default.
func printAuditSettings(w io.Writer, a *ccv1.AuditSettings) {
	age, events := "90 days (default)", "100000 (default)"
	if d := a.GetMaxAge().AsDuration(); a.GetMaxAge() != nil && d > 0 {
		age = d.String()
	}
	if n := a.GetMaxEvents(); n > 0 {
		events = strconv.FormatInt(n, 10)
	}
	fmt.Fprintf(w, "Audit max age:\t%s\n", age)
	fmt.Fprintf(w, "Audit max events:\t%s\n", events)
}
