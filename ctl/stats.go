package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name: "stats", Usage: "show running containers' CPU, memory, pids, network and block I/O, live",
		ArgsUsage: "[ID|NAME...]", OnUsageError: usageError,
		Description: "With no container named, every running container the token may see. The table is\n" +
			"redrawn about once a second until Ctrl-C; --no-stream prints it once. CPU % is of one\n" +
			"core (200% is two whole cores); MEM USAGE leaves out page cache the kernel can reclaim;\n" +
			"the limit is the container's, or its node's memory. NET I/O counts every interface but\n" +
			"loopback. --timeout bounds only connecting, not the streaming.\n\n" +
			"Examples:\n  ccctl stats\n  ccctl stats --no-stream web db\n  ccctl stats --no-stream -o json | jq '.stats[].memory_usage_bytes'",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "no-stream", Usage: "print one table (one JSON object) and exit"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "print whole ids"},
		},
		Action: statsCmd,
	}
}

func statsCmd(c *cli.Context) error {
	req := &ccv1.ContainerStatsRequest{Containers: c.Args().Slice(), NoStream: c.Bool("no-stream")}
	return callStream(c, true, nil, func(ctx context.Context, cl *Client) error {
		stream, err := cl.Stats.ContainerStats(ctx, req)
		if err != nil {
			return err
		}
		redraw := !req.NoStream && !jsonOut(c) && isTerminal(c.App.Writer)
		return recvAll(stream, func(frame *ccv1.ContainerStatsResponse) error {
			if jsonOut(c) {
				if req.NoStream {
					return printJSON(c, frame)
				}
				// A stream is one object per line, for jq and friends.
				data, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(frame)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(c.App.Writer, string(data))
				return err
			}
			if redraw {
				// Clear the screen and go home, as docker stats does.
				fmt.Fprint(c.App.Writer, "\x1b[2J\x1b[H")
			}
			if err := printStats(c, frame); err != nil {
				return err
			}
			if req.NoStream {
				for _, r := range frame.GetStats() {
					if r.GetError() != "" {
						fmt.Fprintf(c.App.ErrWriter, "ccctl: %s: %s\n", r.GetName(), r.GetError())
					}
				}
			}
			return nil
		})
	})
}

func printStats(c *cli.Context, frame *ccv1.ContainerStatsResponse) error {
	id := shortID
	if c.Bool("no-trunc") {
		id = func(s string) string { return s }
	}
	w := table(c)
	fmt.Fprintf(w, "CONTAINER ID\tNAME\tCPU %%\tMEM USAGE / LIMIT\tMEM %%\tNET I/O\tBLOCK I/O\tPIDS\n")
	for _, r := range frame.GetStats() {
		fmt.Fprintf(w, "%s\t%s\t%s\n", id(r.GetId()), r.GetName(), strings.Join(statsFigures(r), "\t"))
	}
	return w.Flush()
}

// statsFigures are a row's columns after the name: "--" for a container
// with no figures (not running, node unreachable).
func statsFigures(r *ccv1.ContainerStats) []string {
	if r.GetError() != "" {
		return []string{"--", "-- / --", "--", "-- / --", "-- / --", "--"}
	}
	memPct := 0.0
	if r.GetMemoryLimitBytes() > 0 {
		memPct = float64(r.GetMemoryUsageBytes()) / float64(r.GetMemoryLimitBytes()) * 100
	}
	return []string{
		fmt.Sprintf("%.2f%%", r.GetCpuPercent()),
		humanSize(r.GetMemoryUsageBytes()) + " / " + humanSize(r.GetMemoryLimitBytes()),
		fmt.Sprintf("%.2f%%", memPct),
		humanSize(r.GetNetRxBytes()) + " / " + humanSize(r.GetNetTxBytes()),
		humanSize(r.GetBlockReadBytes()) + " / " + humanSize(r.GetBlockWriteBytes()),
		fmt.Sprint(r.GetPids()),
	}
}
