package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/internal/logging"
)

func recoverCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "recover",
		Usage: "bring back a cluster that lost its quorum, from the surviving servers' data",
		Description: "Stop every surviving server. On each, run recover with the same list of the survivors\n" +
			"(their ids from `server-id` in each data dir, and raft addresses), then start them again:\n\n" +
			"  cc-controlplane recover --data-dir /var/lib/cc --server s-1a2b=10.0.0.5:7444 --server s-3c4d=10.0.0.6:7444\n\n" +
			"Writes acknowledged by the lost majority only may be lost: recover trades them for availability.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "data-dir", Usage: "the stopped server's `DIR`", Required: true},
			&ucli.StringSliceFlag{Name: "server", Usage: "a surviving server `ID=RAFTADDR` (repeat for each; include this one)", Required: true},
		},
		OnUsageError: usageError,
		Action: func(c *ucli.Context) error {
			dir := c.String("data-dir")
			idBytes, err := os.ReadFile(filepath.Join(dir, "server-id"))
			if err != nil {
				return fmt.Errorf("--data-dir %s: no server-id (%v): is it a control-plane data dir?", dir, err)
			}
			self := strings.TrimSpace(string(idBytes))
			servers := map[string]string{}
			for _, s := range c.StringSlice("server") {
				id, addr, ok := strings.Cut(s, "=")
				if !ok || id == "" || addr == "" {
					return fmt.Errorf("--server %q: use ID=RAFTADDR, e.g. %s=10.0.0.5:7444", s, self)
				}
				servers[id] = addr
			}
			if _, ok := servers[self]; !ok {
				return fmt.Errorf("--server must include this server, %s=ITS-RAFT-ADDRESS", self)
			}
			log, err := logging.New(c.App.ErrWriter, "warn", "text")
			if err != nil {
				return err
			}
			f, err := fsm.Open(filepath.Join(dir, "state.db"), log)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := raftstore.Recover(filepath.Join(dir, "raft"), self, servers, f, log); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
			if _, err := f.Cluster(); errors.Is(err, fsm.ErrNotInitialized) {
				return errors.New("recover: the state holds no cluster after replaying the log")
			}
			fmt.Fprintf(c.App.Writer, "Recovered %s with %d server(s). Start it with: cc-controlplane --data-dir %s\n", self, len(servers), dir)
			return nil
		},
	}
}
