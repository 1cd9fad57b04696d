package ctl

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name: "cluster", Usage: "show and change the cluster-wide settings",
		Subcommands: []*cli.Command{
			{
				Name: "settings", Usage: "show the cluster-wide settings, or change those the flags name", OnUsageError: usageError,
				Description: "The scheduling strategy chooses among the nodes where a new task fits:\n" +
					"  spread   the node with the fewest tasks of its service, then the fewest tasks (the default)\n" +
					"  binpack  the fullest node, keeping others free for large tasks\n" +
					"It applies to tasks placed from then on; running tasks stay where they are.\n\n" +
					"Examples:\n  ccctl cluster settings\n  ccctl cluster settings --scheduling-strategy binpack",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "scheduling-strategy", Usage: "`STRATEGY` of the scheduler: spread or binpack"},
				},
				Action: clusterSettings,
			},
		},
	}
}

func clusterSettings(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("cluster settings takes no arguments, got %q (change a setting with its flag, e.g. --scheduling-strategy binpack)", c.Args().Slice())
	}
	var update *ccv1.UpdateSettingsRequest
	if c.IsSet("scheduling-strategy") {
		s, err := parseStrategy(c.String("scheduling-strategy"))
		if err != nil {
			return err
		}
		update = &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{SchedulingStrategy: s}}
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		var settings *ccv1.Settings
		if update != nil {
			resp, err := cl.Cluster.UpdateSettings(ctx, update)
			if err != nil {
				return err
			}
			settings = resp.GetSettings()
		} else {
			st, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
			if err != nil {
				return err
			}
			settings = st.GetSettings()
		}
		if jsonOut(c) {
			if settings == nil {
				settings = &ccv1.Settings{}
			}
			return printJSON(c, settings)
		}
		w := table(c)
		fmt.Fprintf(w, "Scheduling strategy:\t%s\n", schedulingStrategy(settings.GetSchedulingStrategy()))
		return w.Flush()
	})
}

// schedulingStrategy prints a strategy; unset is the default, spread.
func schedulingStrategy(s ccv1.SchedulingStrategy) string {
	if s == ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED {
		s = ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD
	}
	return enumWord(s.String(), "SCHEDULING_STRATEGY_")
}
