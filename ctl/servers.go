package ctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "list and manage the control-plane servers (raft members)",
		Description: "Add a server with a server join token:\n" +
			"  ccctl token create --role server\n" +
			"  cc-controlplane --join ADDR --token CCTKN-1-... --data-dir DIR   (on the new server)",
		Subcommands: []*cli.Command{
			{Name: "ls", Aliases: []string{"list"}, Usage: "list servers: raft role, last contact, last index, health, readiness, version (-o json: every check)", Action: serverList, OnUsageError: usageError},
			{
				Name: "remove", Aliases: []string{"rm"}, Usage: "remove a server from the cluster (refused when it would lose quorum)", ArgsUsage: "ID",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove even when the cluster would lose quorum"}},
				Action: serverRemove, OnUsageError: usageError,
			},
			{Name: "transfer-leadership", Usage: "hand leadership to another server (any voter when no ID)", ArgsUsage: "[ID]", Action: serverTransfer, OnUsageError: usageError},
		},
	}
}

func serverList(c *cli.Context) error {
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Cluster.ListServers(ctx, &ccv1.ListServersRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		w := table(c)
		fmt.Fprintf(w, "ID\tNAME\tRAFT ADDRESS\tAPI ADDRESS\tROLE\tLAST CONTACT\tLAST INDEX\tHEALTHY\tREADY\tVERSION\n")
		for _, s := range resp.Servers {
			contact := "-"
			if s.LastContact != nil && !s.Leader {
				contact = s.LastContact.AsDuration().Round(1e6).String()
			}
			role := s.RaftRole
			if s.Leader {
				role = "Leader"
			}
			ready, version := "unknown", s.Version
			if len(s.Checks) > 0 {
				ready = fmt.Sprint(s.Ready)
			}
			if version == "" {
				version = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%v\t%s\t%s\n", s.Id, s.Name, s.RaftAddress, s.ApiAddress, role, contact, s.LastIndex, s.Healthy, ready, version)
		}
		return w.Flush()
	})
}

func serverRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("server remove needs exactly one server ID (see `ccctl server ls`)")
	}
	id := c.Args().First()
	return call(c, func(ctx context.Context, cl *Client) error {
		if _, err := cl.Cluster.RemoveServer(ctx, &ccv1.RemoveServerRequest{Id: id, Force: c.Bool("force")}); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Server %s removed.\n", id)
		// This context refuses it from now on.
		_, _ = cl.refreshTrust(ctx, true)
		return nil
	})
}

func serverTransfer(c *cli.Context) error {
	if c.NArg() > 1 {
		return errors.New("server transfer-leadership takes at most one server ID")
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Cluster.TransferLeadership(ctx, &ccv1.TransferLeadershipRequest{Id: c.Args().First()})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Leader is now %s.\n", resp.LeaderId)
		return nil
	})
}
