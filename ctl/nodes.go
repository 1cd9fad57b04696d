package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name: "node", Usage: "list, inspect, drain, label and remove the nodes (agent hosts)",
		Description: "Examples:\n" +
			"  ccctl node ls\n" +
			"  ccctl node drain node-2        (its service tasks move to other nodes)\n" +
			"  ccctl node activate node-2\n" +
			"  ccctl node label node-1 zone=a disk=ssd\n" +
			"  ccctl service create web --image nginx --constraint node.labels.zone==a",
		Subcommands: []*cli.Command{
			{Name: "ls", Aliases: []string{"list"}, Usage: "list nodes", Action: nodeList, OnUsageError: usageError,
				Description: "Examples:\n  ccctl node ls\n  ccctl node ls -w     # then a row per change, until Ctrl-C",
				Flags:       []cli.Flag{watchFlag}},
			{
				Name: "inspect", Usage: "print a node as JSON", ArgsUsage: "ID|NAME", OnUsageError: usageError,
				Description: "ID may be a unique prefix. Example:\n  ccctl node inspect node-1 | jq .user_labels\n\n" +
					"user_labels are the operator's (ccctl node label; constraints node.labels.KEY); labels are what the\n" +
					"node's agent reports (its --label; constraints node.reported.KEY only)",
				Action: nodeInspect,
			},
			availabilityCommand("drain", nil, ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN,
				"move the service tasks of nodes to other nodes and place no new tasks there",
				"Single containers (`ccctl run`) stay. `ccctl node activate` undoes it."),
			availabilityCommand("pause", []string{"cordon"}, ccv1.NodeAvailability_NODE_AVAILABILITY_PAUSE,
				"place no new tasks on nodes; the tasks they run stay",
				"`ccctl node activate` undoes it."),
			availabilityCommand("activate", []string{"uncordon"}, ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
				"let nodes take new tasks again, after drain or pause",
				"Tasks moved away by a drain do not come back by themselves; they stay where they run."),
			{
				Name: "label", Usage: "set or remove labels of a node, for placement constraints (node.labels.KEY)",
				ArgsUsage: "ID|NAME KEY=VALUE... [KEY-...]", OnUsageError: usageError,
				Description: "These labels are the operator's, the only ones node.labels.KEY constraints see; what the agent reports\n" +
					"(its --label) is kept apart, as node.reported.KEY, since anyone with a join token chooses it.\n" +
					"A KEY- argument (kubectl's form) or --rm KEY removes a label.\n\n" +
					"Examples:\n  ccctl node label node-1 zone=a disk=ssd\n  ccctl node label node-1 --rm disk\n  ccctl node label node-1 zone=b disk-",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "rm", Usage: "remove the label `KEY`; repeatable"},
				},
				Action: nodeLabel,
			},
			{
				Name: "update", Usage: "change a node's availability and labels, as docker node update",
				ArgsUsage: "ID|NAME", OnUsageError: usageError,
				Description: "Examples:\n  ccctl node update --availability drain node-2\n  ccctl node update --label-add zone=a --label-rm disk node-1",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "availability", Usage: "`AVAILABILITY`: active, pause or drain"},
					&cli.StringSliceFlag{Name: "label-add", Usage: "set the label `KEY=VALUE`; repeatable"},
					&cli.StringSliceFlag{Name: "label-rm", Usage: "remove the label `KEY`; repeatable"},
				},
				Action: nodeUpdate,
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

const nodeHeader = "ID\tNAME\tSTATE\tAVAILABILITY\tADDRESS\tCPU\tMEMORY\tTASKS\tVERSION"

// nodeRow is a node's row of node ls; a removed node's state is "removed".
func nodeRow(n *ccv1.Node, removed bool) string {
	mem := "-"
	if b := n.GetResources().GetMemoryBytes(); b > 0 {
		mem = humanSize(b)
	}
	state := enumWord(n.GetState().String(), "NODE_STATE_")
	if removed {
		state = "removed"
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s", n.GetId(), n.GetName(), state,
		enumWord(n.GetAvailability().String(), "NODE_AVAILABILITY_"), n.GetAddress(),
		formatCPU(n.GetResources().GetCpuMillis()), mem, n.GetTasks(), n.GetVersion())
}

func nodeList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("node ls takes no arguments, got %q", c.Args().Slice())
	}
	if c.Bool("watch") {
		return callStream(c, true, nil, func(ctx context.Context, cl *Client) error {
			st, err := cl.Nodes.WatchNodes(ctx, &ccv1.WatchNodesRequest{})
			if err != nil {
				return err
			}
			return watchTable(c, nodeHeader, nodeRow, func(a, b *ccv1.Node) bool { return a.GetName() < b.GetName() },
				func() (watchEvent[*ccv1.Node], error) {
					m, err := st.Recv()
					return watchEvent[*ccv1.Node]{m.GetEvent(), m.GetId(), m.GetNode(), m}, err
				})
		})
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
		fmt.Fprintln(w, nodeHeader)
		for _, n := range resp.Nodes {
			fmt.Fprintln(w, nodeRow(n, false))
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

// availabilityCommand is node drain, pause or activate.
func availabilityCommand(name string, aliases []string, a ccv1.NodeAvailability, usage, more string) *cli.Command {
	return &cli.Command{
		Name: name, Aliases: aliases, Usage: usage, ArgsUsage: "ID|NAME...", OnUsageError: usageError,
		Description: more + "\n\nExample:\n  ccctl node " + name + " node-2",
		Action: func(c *cli.Context) error {
			return eachArg(c, "node "+name, 0, func(ctx context.Context, cl *Client, id string) error {
				resp, err := cl.Nodes.UpdateNode(ctx, &ccv1.UpdateNodeRequest{Id: id, Availability: a})
				if err != nil {
					return err
				}
				return done(c, id, resp.GetNode())
			})
		},
	}
}

func nodeLabel(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("node label needs a node ID or NAME and labels, e.g. ccctl node label node-1 zone=a")
	}
	node, set, rm := c.Args().First(), []string(nil), c.StringSlice("rm")
	for _, a := range c.Args().Tail() {
		if strings.Contains(a, "=") {
			set = append(set, a)
		} else if key, ok := strings.CutSuffix(a, "-"); ok {
			rm = append(rm, key)
		} else {
			return fmt.Errorf("node label: %q is not KEY=VALUE (to remove the label: --rm %s, or %s-)", a, a, a)
		}
	}
	add, rm, err := parseLabels(set, rm)
	if err != nil {
		return fmt.Errorf("node label: %v", err)
	}
	if len(add) == 0 && len(rm) == 0 {
		return fmt.Errorf("node label needs labels to set (KEY=VALUE) or remove (--rm KEY), e.g. ccctl node label %s zone=a", node)
	}
	return updateNode(c, &ccv1.UpdateNodeRequest{Id: node, AddLabels: add, RemoveLabels: rm})
}

func nodeUpdate(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("node update needs exactly one node ID or NAME (see `ccctl node ls`)")
	}
	req := &ccv1.UpdateNodeRequest{Id: c.Args().First()}
	if c.IsSet("availability") {
		var err error
		if req.Availability, err = parseAvailability(c.String("availability")); err != nil {
			return err
		}
	}
	var err error
	if req.AddLabels, req.RemoveLabels, err = parseLabels(c.StringSlice("label-add"), c.StringSlice("label-rm")); err != nil {
		return fmt.Errorf("node update: %v", err)
	}
	if req.Availability == ccv1.NodeAvailability_NODE_AVAILABILITY_UNSPECIFIED && len(req.AddLabels) == 0 && len(req.RemoveLabels) == 0 {
		return errors.New("node update changes nothing: give --availability, --label-add or --label-rm")
	}
	return updateNode(c, req)
}

// updateNode sends req and prints the node as given, or with -o json as it
// is now.
func updateNode(c *cli.Context, req *ccv1.UpdateNodeRequest) error {
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Nodes.UpdateNode(ctx, req)
		if err != nil {
			return err
		}
		return done(c, req.Id, resp.GetNode())
	})
}
