package ctl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func volumeCommand() *cli.Command {
	return &cli.Command{
		Name: "volume", Usage: "create, list, inspect and remove volumes (size-limited filesystems on one node)",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a volume on a node", ArgsUsage: "NAME", OnUsageError: usageError,
				Description: "The volume lives on one node: the one given with --node, or one the scheduler picks.\n" +
					"Containers that mount it (ccctl run -v NAME:/path) run on that node.\n\n" +
					"Examples:\n  ccctl volume create data --size 64m\n  ccctl volume create pg --node node-1 --size 10g",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "node", Usage: "keep the volume on node `ID|NAME` (default: a ready node the scheduler picks)"},
					&cli.StringFlag{Name: "size", Value: "1g", Usage: "the filesystem's `SIZE` (e.g. 64m, 10g): writes past it fail with ENOSPC"},
				},
				Action: volumeCreate,
			},
			{Name: "ls", Aliases: []string{"list"}, Usage: "list volumes", Action: volumeList, OnUsageError: usageError},
			{
				Name: "inspect", Usage: "show volumes as JSON", ArgsUsage: "NAME...", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					return eachArg(c, "volume inspect", 0, func(ctx context.Context, cl *Client, name string) error {
						resp, err := cl.Volumes.GetVolume(ctx, &ccv1.GetVolumeRequest{Name: name})
						if err != nil {
							return err
						}
						return printJSON(c, resp.GetVolume())
					})
				},
			},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove volumes and their data (refused while mounted)", ArgsUsage: "NAME...", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					return eachArg(c, "volume rm", 0, func(ctx context.Context, cl *Client, name string) error {
						if _, err := cl.Volumes.RemoveVolume(ctx, &ccv1.RemoveVolumeRequest{Name: name}); err != nil {
							return err
						}
						fmt.Fprintln(c.App.Writer, name)
						return nil
					})
				},
			},
		},
	}
}

func volumeCreate(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("volume create needs one NAME (see `ccctl volume create --help`)")
	}
	size, err := parseSize("size", c.String("size"))
	if err != nil {
		return err
	}
	req := &ccv1.CreateVolumeRequest{Name: c.Args().First(), Node: c.String("node"), SizeBytes: size}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Volumes.CreateVolume(ctx, req)
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		fmt.Fprintln(c.App.Writer, resp.GetVolume().GetName())
		return nil
	})
}

func volumeList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("volume ls takes no arguments, got %q", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Volumes.ListVolumes(ctx, &ccv1.ListVolumesRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		now := time.Now()
		w := table(c)
		fmt.Fprintf(w, "NAME\tNODE\tSIZE\tCREATED\tUSED BY\n")
		for _, v := range resp.Volumes {
			node := v.GetNodeName()
			if node == "" {
				node = v.GetNodeId()
			}
			used := strings.Join(v.GetUsedBy(), ", ")
			if used == "" {
				used = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", v.GetName(), node, humanSize(v.GetSizeBytes()), ago(v.GetCreatedAt(), now), used)
		}
		return w.Flush()
	})
}

// mountFlags are the flags of run and service create (-v, --mount), or of
// service update (-add and -rm forms).
func mountFlags(update bool) []cli.Flag {
	vol := "mount a volume: `NAME:/PATH[:ro]`; repeatable"
	mnt := "mount `type=volume|bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=64m]`; repeatable"
	if !update {
		return []cli.Flag{
			&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: vol},
			&cli.StringSliceFlag{Name: "mount", Usage: mnt},
		}
	}
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "volume-add", Aliases: []string{"volume", "v"}, Usage: "add or replace (by path): " + vol},
		&cli.StringSliceFlag{Name: "mount-add", Aliases: []string{"mount"}, Usage: "add or replace (by target): " + mnt},
		&cli.StringSliceFlag{Name: "mount-rm", Usage: "remove the mount at `TARGET`; repeatable"},
	}
}

// parseMounts reads -v and --mount (run, service create).
func parseMounts(vols, mounts []string) ([]*ccv1.Mount, error) {
	var out []*ccv1.Mount
	for _, v := range vols {
		m, err := parseVolumeFlag(v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, s := range mounts {
		m, err := parseMountFlag(s)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// applyMountFlags changes a service's mounts as the flags of service
// create (-v, --mount) or update (-add and -rm forms) say.
func applyMountFlags(c *cli.Context, t *ccv1.ContainerSpec) error {
	vol, mnt := "volume", "mount"
	if definesFlag(c, "mount-rm") {
		vol, mnt = "volume-add", "mount-add"
	}
	if !c.IsSet("mount-rm") && !c.IsSet(vol) && !c.IsSet(mnt) {
		return nil
	}
	add, err := parseMounts(c.StringSlice(vol), c.StringSlice(mnt))
	if err != nil {
		return err
	}
	drop := c.StringSlice("mount-rm")
	for _, m := range add {
		drop = append(drop, m.Target)
	}
	t.Mounts = slices.DeleteFunc(t.Mounts, func(m *ccv1.Mount) bool { return slices.Contains(drop, m.Target) })
	t.Mounts = append(t.Mounts, add...)
	return nil
}

// parseVolumeFlag reads -v NAME:/PATH[:ro|:rw]. A NAME that is an
// absolute path is a bind mount, as docker reads it.
func parseVolumeFlag(s string) (*ccv1.Mount, error) {
	parts := strings.Split(s, ":")
	bad := fmt.Errorf("-v %q: use NAME:/PATH or NAME:/PATH:ro (a volume from `ccctl volume create`)", s)
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, bad
	}
	m := &ccv1.Mount{Type: "volume", Source: parts[0], Target: parts[1]}
	if strings.HasPrefix(parts[0], "/") {
		m.Type = "bind"
	}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return nil, bad
		}
	}
	return m, nil
}

// parseMountFlag reads --mount type=…,source=…,target=…[,readonly][,tmpfs-size=…].
func parseMountFlag(s string) (*ccv1.Mount, error) {
	m := &ccv1.Mount{Type: "volume"}
	for _, kv := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(strings.TrimSpace(kv), "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			switch {
			case !hasValue || v == "true" || v == "1":
				m.ReadOnly = true
			case v == "false" || v == "0":
			default:
				return nil, fmt.Errorf("--mount %q: readonly is true or false", s)
			}
		case "tmpfs-size":
			n, err := parseSize("mount tmpfs-size", v)
			if err != nil {
				return nil, err
			}
			m.TmpfsSizeBytes = n
		default:
			return nil, fmt.Errorf("--mount %q: unknown key %q: use type, source, target, readonly, tmpfs-size", s, k)
		}
	}
	if m.Target == "" {
		return nil, fmt.Errorf("--mount %q: target=/PATH is required", s)
	}
	if m.Type != "volume" && m.Type != "bind" && m.Type != "tmpfs" {
		return nil, fmt.Errorf("--mount %q: type is volume, bind or tmpfs", s)
	}
	return m, nil
}

// definesFlag reports whether the command has a flag of that name.
func definesFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}
