package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/containercodes/cc/internal/buildinfo"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "show the versions of ccctl and of the cluster's servers",
		Description: "The servers' versions come from the cluster (`ccctl server ls` shows them too). During a\n" +
			"rolling upgrade they differ; docs/upgrade.md says in which order to upgrade.",
		OnUsageError: usageError,
		Action:       versionCmd,
	}
}

// versionOut is `ccctl version -o json`.
type versionOut struct {
	Client  string          `json:"client"`
	Go      string          `json:"go"`
	Servers []serverVersion `json:"servers"`
}

type serverVersion struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

func versionCmd(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("version takes no arguments, got %q", c.Args().Slice())
	}
	out := versionOut{Client: buildinfo.Version, Go: fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)}
	err := call(c, func(ctx context.Context, cl *Client) error {
		st, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
		if err != nil {
			return err
		}
		servers, err := cl.Cluster.ListServers(ctx, &ccv1.ListServersRequest{})
		if err != nil {
			// A server too old to say the others' versions: its own.
			out.Servers = []serverVersion{{ID: st.ServerId, Name: st.ServerName, Version: st.Version}}
			return nil
		}
		for _, s := range servers.Servers {
			v := s.Version
			if s.Id == st.ServerId {
				v = st.Version
			}
			out.Servers = append(out.Servers, serverVersion{ID: s.Id, Name: s.Name, Version: v})
		}
		return nil
	})
	if jsonOut(c) {
		if perr := printAnyJSON(c, out); perr != nil {
			return perr
		}
		return err
	}
	fmt.Fprintf(c.App.Writer, "Client: %s (%s)\n", out.Client, out.Go)
	if err != nil {
		fmt.Fprintf(c.App.Writer, "Server: unknown\n")
		return err
	}
	w := table(c)
	for _, s := range out.Servers {
		v := s.Version
		if v == "" {
			v = "unknown (unreachable, or older than the version report)"
		}
		fmt.Fprintf(w, "Server:\t%s\t%s\t%s\n", s.Name, s.ID, v)
	}
	return w.Flush()
}

// printAnyJSON prints a value that is not a proto message, indented.
func printAnyJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
