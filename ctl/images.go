package ctl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// loadChunk is the size of the pieces of an image upload.
const loadChunk = 1 << 20

func imageCommand() *cli.Command {
	return &cli.Command{
		Name: "image", Usage: "load, list and remove container images",
		Subcommands: []*cli.Command{
			{
				Name: "load", Usage: "upload an image archive (docker save or OCI layout tar)", ArgsUsage: "[FILE|-]", OnUsageError: usageError,
				Description: "Reads FILE, -i FILE, or standard input (- or a pipe).\n\n" +
					"Examples:\n  ccctl image load app.tar\n  docker save app:1.0 | ccctl image load -\n  ccctl image load < app.tar",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "read the archive from `FILE` (- for standard input)"},
				},
				Action: imageLoad,
			},
			{Name: "ls", Aliases: []string{"list"}, Usage: "list loaded images", Action: imageList, OnUsageError: usageError},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove loaded images", ArgsUsage: "NAME|DIGEST...", OnUsageError: usageError,
				Description: "Examples:\n  ccctl image rm app:1.0\n  ccctl image rm sha256:3f1c…",
				Action: func(c *cli.Context) error {
					return eachArg(c, "image rm", 0, func(ctx context.Context, cl *Client, name string) error {
						resp, err := cl.Images.RemoveImage(ctx, &ccv1.RemoveImageRequest{Image: name})
						if err != nil {
							return err
						}
						if jsonOut(c) {
							return printJSON(c, resp)
						}
						fmt.Fprintf(c.App.Writer, "Deleted: %s\n", name)
						return nil
					})
				},
			},
		},
	}
}

// loadInput is the archive of `image load`: the file or standard input.
func loadInput(c *cli.Context) (f *os.File, name string, err error) {
	name = c.String("input")
	switch {
	case c.NArg() > 1 || (c.NArg() == 1 && name != ""):
		return nil, "", errors.New("image load reads one archive: give FILE, -i FILE, or - for standard input")
	case c.NArg() == 1:
		name = c.Args().First()
	case name == "":
		if in, ok := c.App.Reader.(*os.File); ok && !isTerminal(in) {
			name = "-"
		} else {
			return nil, "", errors.New("image load needs an archive: give FILE, -i FILE, or - for standard input")
		}
	}
	if name == "-" {
		in, ok := c.App.Reader.(*os.File)
		if !ok {
			return nil, "", errors.New("standard input is not a file")
		}
		return in, "standard input", nil
	}
	f, err = os.Open(name)
	return f, name, err
}

func imageLoad(c *cli.Context) error {
	f, name, err := loadInput(c)
	if err != nil {
		return err
	}
	if f != c.App.Reader {
		defer f.Close()
	}
	header := &ccv1.LoadImageHeader{}
	// A regular file (also stdin redirected from one) is read twice: once for
	// its size and digest, which the server checks, then to upload it.
	prepare := func() error {
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		start, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil // not seekable after all: upload without size and digest
		}
		header.Size = fi.Size() - start
		h := sha256.New()
		p := newProgress(c.App.ErrWriter, "Hashing", header.Size)
		if _, err := io.Copy(h, io.TeeReader(f, progressWriter{p})); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		p.Done()
		header.Sha256 = hex.EncodeToString(h.Sum(nil))
		_, err = f.Seek(start, io.SeekStart)
		return err
	}
	return callStream(c, false, prepare, func(ctx context.Context, cl *Client) error {
		stream, err := cl.Images.LoadImage(ctx)
		if err != nil {
			return err
		}
		// send returns the stream's own error when the server ended it.
		send := func(m *ccv1.LoadImageRequest) error {
			err := stream.Send(m)
			if errors.Is(err, io.EOF) {
				if _, err = stream.CloseAndRecv(); err == nil {
					err = errors.New("the server ended the upload early")
				}
			}
			return err
		}
		if err := send(&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Header{Header: header}}); err != nil {
			return err
		}
		p := newProgress(c.App.ErrWriter, "Loading", header.Size)
		buf := make([]byte, loadChunk)
		for {
			n, rerr := io.ReadFull(f, buf)
			if n > 0 {
				if err := send(&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Chunk{Chunk: buf[:n]}}); err != nil {
					return err
				}
				p.Add(n)
			}
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				break
			}
			if rerr != nil {
				return fmt.Errorf("%s: %v", name, rerr)
			}
		}
		p.Done()
		resp, err := stream.CloseAndRecv()
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		img := resp.GetImage()
		for _, n := range img.GetNames() {
			fmt.Fprintf(c.App.Writer, "Loaded image: %s\n", n)
		}
		fmt.Fprintf(c.App.Writer, "Digest: %s\n", img.GetDigest())
		return nil
	})
}

func imageList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("image ls takes no arguments, got %q", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Images.ListImages(ctx, &ccv1.ListImagesRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		now := time.Now()
		w := table(c)
		fmt.Fprintf(w, "NAME\tDIGEST\tCREATED\tSIZE\n")
		for _, img := range resp.Images {
			names := img.GetNames()
			if len(names) == 0 {
				names = []string{"<none>"}
			}
			for _, n := range names {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n, shortDigest(img.GetDigest()), ago(img.GetCreatedAt(), now), humanSize(img.GetSize()))
			}
		}
		return w.Flush()
	})
}
