package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name: "token", Usage: "create, list and revoke tokens: join tokens for agents, API tokens for users",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a token; its secret is printed once", Action: tokenCreate, OnUsageError: usageError,
				Description: "The default is a join token (role agent), with which a host joins the cluster as a node\n" +
					"(`cc-agent --join ADDR --token TOKEN`), as `docker swarm join-token` gives.\n\n" +
					"Examples:\n" +
					"  ccctl token create --uses 3 --ttl 24h -d \"rack 2\"\n" +
					"  ccctl token create --role viewer -d dashboards\n" +
					"  ccctl token create --role jobs -d ci\n" +
					"  ccctl token create --role metrics -d prometheus",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "role", Value: "agent", Usage: "`ROLE`: agent (join a host as a node), server (join a control-plane server), admin (every call), viewer (read-only calls), jobs (submit jobs, and read, cancel and download its own) or metrics (read /metrics only, for Prometheus)"},
					&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "what the token is for"},
					&cli.DurationFlag{Name: "ttl", Usage: "expire after `DURATION` (e.g. 720h; 0: never)"},
					&cli.UintFlag{Name: "uses", Usage: "let at most `N` hosts join with it (agent tokens; 0: no limit)"},
				},
			},
			{Name: "ls", Aliases: []string{"list"}, Usage: "list tokens (never their secrets)", Action: tokenList, OnUsageError: usageError},
			{Name: "revoke", Usage: "revoke a token", ArgsUsage: "ID", Action: tokenRevoke, OnUsageError: usageError},
		},
	}
}

func parseRole(s string) (ccv1.Role, error) {
	switch strings.ToLower(s) {
	case "agent":
		return ccv1.Role_ROLE_AGENT, nil
	case "admin":
		return ccv1.Role_ROLE_ADMIN, nil
	case "viewer":
		return ccv1.Role_ROLE_VIEWER, nil
	case "server":
		return ccv1.Role_ROLE_SERVER, nil
	case "jobs":
		return ccv1.Role_ROLE_JOBS, nil
	case "metrics":
		return ccv1.Role_ROLE_METRICS, nil
	}
	return 0, fmt.Errorf("--role %q: use agent, server, admin, viewer, jobs or metrics", s)
}

func tokenCreate(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("token create takes no arguments, got %q (a description goes in -d)", c.Args().Slice())
	}
	role, err := parseRole(c.String("role"))
	if err != nil {
		return err
	}
	if c.Duration("ttl") < 0 {
		return errors.New("--ttl: must be positive")
	}
	if c.IsSet("uses") && role != ccv1.Role_ROLE_AGENT && role != ccv1.Role_ROLE_SERVER {
		return errors.New("--uses limits joins: it is for agent and server tokens only")
	}
	req := &ccv1.CreateTokenRequest{Role: role, Description: c.String("description"), MaxUses: uint32(c.Uint("uses"))}
	if uint(req.MaxUses) != c.Uint("uses") {
		return fmt.Errorf("--uses %d: too many", c.Uint("uses"))
	}
	if d := c.Duration("ttl"); d > 0 {
		req.Ttl = durationpb.New(d)
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Tokens.CreateToken(ctx, req)
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		if resp.GetToken().GetRole() == ccv1.Role_ROLE_AGENT {
			fmt.Fprintf(c.App.Writer, "Join token (shown once): %s\n\nTo join a host to the cluster as a node, run on it:\n\n  cc-agent --join %s --token %s\n\nRevoke it with: ccctl token revoke %s\n",
				resp.Secret, cl.addr, resp.Secret, resp.GetToken().GetId())
			return nil
		}
		if resp.GetToken().GetRole() == ccv1.Role_ROLE_SERVER {
			fmt.Fprintf(c.App.Writer, "Server join token (shown once): %s\n\nTo add a control-plane server, run on it:\n\n  cc-controlplane --join %s --token %s --data-dir /var/lib/cc\n\nRevoke it with: ccctl token revoke %s\n",
				resp.Secret, cl.addr, resp.Secret, resp.GetToken().GetId())
			return nil
		}
		fmt.Fprintf(c.App.Writer, "Token %s (%s) created. Its secret is shown only now:\n\n  %s\n", resp.Token.Id, enumWord(resp.Token.Role.String(), "ROLE_"), resp.Secret)
		if resp.GetToken().GetRole() == ccv1.Role_ROLE_METRICS {
			fmt.Fprintf(c.App.Writer, "\nPrometheus reads https://%s/metrics with it as a bearer token (a credentials file:\ndocs/monitoring/prometheus.yml).\n", cl.addr)
		}
		return nil
	})
}

// tokenUses prints a join token's uses and limit: "1/5", "3/-".
func tokenUses(t *ccv1.Token) string {
	if t.GetRole() != ccv1.Role_ROLE_AGENT && t.GetRole() != ccv1.Role_ROLE_SERVER {
		return "-"
	}
	if t.GetMaxUses() == 0 {
		return fmt.Sprintf("%d/-", t.GetUses())
	}
	return fmt.Sprintf("%d/%d", t.GetUses(), t.GetMaxUses())
}

func tokenList(c *cli.Context) error {
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		w := table(c)
		fmt.Fprintf(w, "ID\tROLE\tUSES\tCREATED\tEXPIRES\tREVOKED\tDESCRIPTION\n")
		for _, t := range resp.Tokens {
			expires := "never"
			if t.ExpiresAt != nil {
				expires = when(t.ExpiresAt)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", t.Id, enumWord(t.Role.String(), "ROLE_"), tokenUses(t), when(t.CreatedAt), expires, t.Revoked, t.Description)
		}
		return w.Flush()
	})
}

func tokenRevoke(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("token revoke needs exactly one token ID (see `ccctl token ls`)")
	}
	id := c.Args().First()
	return call(c, func(ctx context.Context, cl *Client) error {
		if _, err := cl.Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: id}); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Token %s revoked.\n", id)
		return nil
	})
}
