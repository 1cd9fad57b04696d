package ctl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "back up the cluster state",
		Subcommands: []*cli.Command{{
			Name: "save", Usage: "save a consistent copy of the cluster state to FILE (admin)", ArgsUsage: "FILE",
			Description: "The snapshot holds the cluster's secrets (its CA key, token hashes): keep it safe.\n" +
				"It does not hold image blobs. Restore it with `cc-controlplane snapshot restore`\n" +
				"(see docs/backup-and-restore.md).",
			OnUsageError: usageError,
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "overwrite FILE if it exists"},
			},
			Action: snapshotSave,
		}},
	}
}

func snapshotSave(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("snapshot save needs exactly one FILE (see `%s --help`)", c.Command.HelpName)
	}
	path := c.Args().First()
	if fi, err := os.Stat(path); err == nil {
		if !c.Bool("force") {
			return fmt.Errorf("%s exists: choose another FILE, or overwrite it with --force", path)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tmp := path + ".tmp"
	var res snapshotResult
	err := callStream(c, false, nil, func(ctx context.Context, cl *Client) error {
		var err error
		res, err = receiveSnapshot(ctx, cl, tmp, newProgress(c.App.ErrWriter, "Saving", 0))
		return err
	})
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := fsyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if jsonOut(c) {
		out, err := json.MarshalIndent(map[string]any{"file": path, "index": res.index, "size": res.size, "sha256": res.sum}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.App.Writer, string(out))
		return err
	}
	_, err = fmt.Fprintf(c.App.Writer, "Snapshot at raft index %d saved to %s (%.2f MiB, sha256 %s)\n",
		res.index, path, float64(res.size)/(1<<20), res.sum)
	return err
}

type snapshotResult struct {
	index uint64
	size  int64
	sum   string
}

// receiveSnapshot writes the stream to tmp, fsynced, and checks it against
// the checksum of the last message.
func receiveSnapshot(ctx context.Context, cl *Client, tmp string, p *progress) (res snapshotResult, err error) {
	stream, err := cl.Cluster.SaveSnapshot(ctx, &ccv1.SaveSnapshotRequest{})
	if err != nil {
		return res, err
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%s: %v", tmp, cerr)
		}
	}()
	h := sha256.New()
	w := io.MultiWriter(f, h, progressWriter{p})
	first := true
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		if res.sum != "" {
			return res, errors.New("the server sent data after the snapshot's checksum")
		}
		if first {
			res.index, first = m.GetIndex(), false
		}
		if _, err := w.Write(m.GetData()); err != nil {
			return res, fmt.Errorf("%s: %v", tmp, err)
		}
		res.size += int64(len(m.GetData()))
		res.sum = m.GetSha256()
	}
	p.Done()
	switch got := hex.EncodeToString(h.Sum(nil)); {
	case first:
		return res, errors.New("the server sent no snapshot")
	case res.sum == "":
		return res, errors.New("the snapshot stream ended without its checksum: it is incomplete")
	case got != res.sum:
		return res, fmt.Errorf("the snapshot is damaged: sha256 %s, the server says %s", got, res.sum)
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("%s: %v", tmp, err)
	}
	return res, nil
}

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
