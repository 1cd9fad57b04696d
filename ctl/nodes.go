package ctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name: "node", Usage: "list, inspect and remove the nodes (agent hosts)",
		Subcommands: []*cli.Command{
			{Name: "ls", Aliases: []string{"list"}, Usage: "list nodes", Action: nodeList, OnUsageError: usageError},
			{
				Name: "inspect", Usage: "print a node as JSON", ArgsUsage: "ID|NAME", OnUsageError: usageError,
				Description: "ID may be a unique prefix. Example:\n  ccctl node inspect node-1 | jq .labels",
				Action:      nodeInspect,
			},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove nodes; their certificates are refused from then on",
				ArgsUsage: "ID|NAME...", OnUsageError: usageError,
				Description: "A node that is still ready is removed only with --force.\n\nExample:\n  ccctl node rm node-3",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove a node that is still ready"},
				},
				Action: func(c *cli.Context) error {
					return eachArg(c, "node rm", 0, func(ctx context.Context, cl *Client, id string) error {
						resp, err := cl.Nodes.RemoveNode(ctx, &ccv1.RemoveNodeRequest{Id: id, Force: c.Bool("force")})
						if err != nil {
							return err
						}
						return done(c, id, resp)
					})
				},
			},
		},
	}
}

func nodeList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("node ls takes no arguments, got %q", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		w := table(c)
		fmt.Fprintf(w, "ID\tNAME\tSTATE\tAVAILABILITY\tADDRESS\tCPU\tMEMORY\tVERSION\n")
		for _, n := range resp.Nodes {
			mem := "-"
			if b := n.GetResources().GetMemoryBytes(); b > 0 {
				mem = humanSize(b)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Id, n.Name, enumWord(n.State.String(), "NODE_STATE_"),
				enumWord(n.Availability.String(), "NODE_AVAILABILITY_"), n.Address,
				formatCPU(n.GetResources().GetCpuMillis()), mem, n.Version)
		}
		return w.Flush()
	})
}

func nodeInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("node inspect needs exactly one node ID or NAME (see `ccctl node ls`)")
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Nodes.GetNode(ctx, &ccv1.GetNodeRequest{Id: c.Args().First()})
		if err != nil {
			return err
		}
		return printJSON(c, resp.GetNode())
	})
}
