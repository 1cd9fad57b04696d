package ctl

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func siteCommand() *cli.Command {
	return &cli.Command{
		Name:  "site",
		Usage: "serve static sites from the edge of every node: a directory deployed as a versioned bundle",
		Description: "Examples:\n" +
			"  ccctl site deploy docs ./public --host docs.localhost\n" +
			"  ccctl site deploy app ./dist --host app.example.com --spa --cache-control 'public, max-age=60'\n" +
			"  ccctl site deploy docs ./public --host docs.example.com --tls auto --hsts 8760h\n" +
			"  ccctl site ls\n" +
			"  ccctl site rollback docs\n" +
			"  ccctl site rm docs",
		Subcommands: []*cli.Command{
			{
				Name: "deploy", Usage: "upload a directory as a site's new current version", ArgsUsage: "NAME DIR", OnUsageError: usageError,
				Description: "A new site needs --host. Later deploys keep the site's settings unless flags change them\n" +
					"(--tls, --no-https-redirect, --hsts and --hsts-subdomains too: see `ccctl route --help`).\n" +
					"Regular files and directories are packed; a symbolic link is followed when it stays inside\n" +
					"DIR and refused when it leaves it.",
				Flags: append([]cli.Flag{
					&cli.StringSliceFlag{Name: "host", Usage: "serve for Host `NAME` (exact, or *.example.com); repeatable"},
					&cli.StringFlag{Name: "path", Usage: "serve the files under `PREFIX` (default: /)"},
					&cli.BoolFlag{Name: "spa", Usage: "serve /index.html for paths that name no file (single-page applications)"},
					&cli.StringFlag{Name: "cache-control", Usage: "send Cache-Control `VALUE` (default: public, max-age=0, must-revalidate)"},
					&cli.StringFlag{Name: "not-found", Usage: "serve `FILE` of the site with status 404 when no file matches (e.g. 404.html)"},
				}, append(tlsFlags(), progressFlags("print only the version deployed")...)...),
				Action: siteDeploy,
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list sites: hosts, path, current version", OnUsageError: usageError,
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the names"}},
				Action: siteList,
			},
			{
				Name: "inspect", Usage: "print a site as JSON, with its kept versions", ArgsUsage: "NAME", OnUsageError: usageError,
				Action: siteInspect,
			},
			{
				Name: "rollback", Usage: "serve a kept version again (default: the one before the current)", ArgsUsage: "NAME", OnUsageError: usageError,
				Description: "Examples:\n  ccctl site rollback docs\n  ccctl site rollback docs --to 3",
				Flags:       []cli.Flag{&cli.StringFlag{Name: "to", Usage: "serve version `N` (see ccctl site inspect)"}},
				Action:      siteRollback,
			},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove sites and all their versions", ArgsUsage: "NAME...", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					return eachArg(c, "site rm", 0, func(ctx context.Context, cl *Client, name string) error {
						resp, err := cl.Edge.RemoveSite(ctx, &ccv1.RemoveSiteRequest{Name: name})
						if err != nil {
							return err
						}
						return done(c, name, resp)
					})
				},
			},
		},
	}
}

// siteEntry is one file or directory to pack: its name in the archive
// and the file it is read from (a link's target).
type siteEntry struct {
	name string
	path string
	info fs.FileInfo
}

// siteEntries walks dir for deploy: directories and regular files; a
// symbolic link is followed when its target is a file inside dir, and
// refused otherwise. Other kinds of files are left out with a warning.
func siteEntries(dir string, warn func(string)) ([]siteEntry, int64, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %v", dir, unwrapPath(err))
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, 0, err
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, 0, fmt.Errorf("%s is not a directory: give the directory of the site's files", dir)
	}
	var out []siteEntry
	var total int64
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %v", dir, err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		shown := filepath.Join(dir, rel)
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("%s: %v", shown, unwrapPath(err))
		}
		src := p
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("%s: a symbolic link that leads nowhere (%v): remove it", shown, unwrapPath(err))
			}
			if r, err := filepath.Rel(root, target); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
				return fmt.Errorf("%s links outside %s (to %s): copy the file in instead", shown, dir, target)
			}
			if fi, err = os.Stat(target); err != nil {
				return fmt.Errorf("%s: %v", shown, unwrapPath(err))
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s: a symbolic link to a directory: copy the directory in instead", shown)
			}
			src = target
		}
		switch {
		case fi.IsDir():
			out = append(out, siteEntry{name: name + "/", path: src, info: fi})
		case fi.Mode().IsRegular():
			out = append(out, siteEntry{name: name, path: src, info: fi})
			total += fi.Size()
		default:
			warn(fmt.Sprintf("%s is not a file or a directory; left out", shown))
		}
		return nil
	})
	return out, total, err
}

// packSite writes the tar.gz of the entries to w, counting the content
// bytes on p.
func packSite(w io.Writer, entries []siteEntry, p *progress) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: e.info.ModTime().Truncate(time.Second), Format: tar.FormatPAX}
		if !e.info.IsDir() {
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, e.info.Size()
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.info.IsDir() {
			continue
		}
		f, err := os.Open(e.path)
		if err != nil {
			return fmt.Errorf("%s: %v", e.path, unwrapPath(err))
		}
		n, err := io.Copy(io.MultiWriter(tw, progressWriter{p}), io.LimitReader(f, h.Size))
		f.Close()
		if err == nil && n != h.Size {
			err = errors.New("it shrank while being packed")
		}
		if err != nil {
			return fmt.Errorf("%s: %v", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// siteSpecFlags says whether deploy was given any of the site's settings.
func siteSpecFlags(c *cli.Context) bool {
	for _, f := range []string{"host", "path", "spa", "cache-control", "not-found"} {
		if c.IsSet(f) {
			return true
		}
	}
	return tlsFlagsSet(c)
}

func applySiteFlags(c *cli.Context, s *ccv1.SiteSpec) error {
	if c.IsSet("host") {
		s.Hosts = lowerHosts(c.StringSlice("host"))
	}
	if c.IsSet("path") {
		s.PathPrefix = c.String("path")
	}
	if c.IsSet("spa") {
		s.Spa = c.Bool("spa")
	}
	if c.IsSet("cache-control") {
		s.CacheControl = c.String("cache-control")
	}
	if c.IsSet("not-found") {
		s.NotFound = c.String("not-found")
	}
	tls, err := applyTLSFlags(c, s.GetTls())
	if err != nil {
		return err
	}
	s.Tls = tls
	return nil
}

func siteDeploy(c *cli.Context) error {
	if c.NArg() != 2 {
		return errors.New("site deploy needs NAME and DIR (e.g. ccctl site deploy docs ./public --host docs.localhost)")
	}
	name, dir := c.Args().Get(0), c.Args().Get(1)
	if err := checkTLSFlagValues(c); err != nil {
		return err
	}
	warn := func(msg string) { fmt.Fprintf(c.App.ErrWriter, "ccctl: warning: %s\n", msg) }
	entries, total, err := siteEntries(dir, warn)
	if err != nil {
		return err
	}
	return callStream(c, false, nil, func(ctx context.Context, cl *Client) error {
		var spec *ccv1.SiteSpec
		if siteSpecFlags(c) {
			// The flags change the current settings; a new site (not
			// found) starts from none and needs --host.
			spec = &ccv1.SiteSpec{}
			cur, err := cl.Edge.GetSite(ctx, &ccv1.GetSiteRequest{Name: name})
			switch {
			case err == nil && cur.GetSite().GetSpec() != nil:
				spec = proto.Clone(cur.GetSite().GetSpec()).(*ccv1.SiteSpec)
			case err == nil:
			case status.Code(err) == codes.NotFound && c.IsSet("host"):
			default:
				return err
			}
			if err := applySiteFlags(c, spec); err != nil {
				return err
			}
		}
		stream, err := cl.Edge.DeploySite(ctx)
		if err != nil {
			return err
		}
		send := func(m *ccv1.DeploySiteRequest) error {
			err := stream.Send(m)
			if errors.Is(err, io.EOF) {
				if _, err = stream.CloseAndRecv(); err == nil {
					err = errors.New("the server ended the upload early")
				}
			}
			return err
		}
		if err := send(&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Header{Header: &ccv1.DeploySiteHeader{Name: name, Spec: spec}}}); err != nil {
			return err
		}
		p := transferProgress(c, "Deploying", total)
		pr, pw := io.Pipe()
		packed := make(chan error, 1)
		go func() {
			err := packSite(pw, entries, p)
			pw.CloseWithError(err)
			packed <- err
		}()
		buf := make([]byte, loadChunk)
		var sendErr error
		for {
			n, rerr := io.ReadFull(pr, buf)
			if n > 0 {
				if sendErr = send(&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Chunk{Chunk: buf[:n]}}); sendErr != nil {
					pr.CloseWithError(sendErr)
					break
				}
			}
			if rerr != nil {
				break
			}
		}
		packErr := <-packed
		p.Done()
		switch {
		case sendErr != nil:
			return sendErr
		case packErr != nil:
			return packErr
		}
		resp, err := stream.CloseAndRecv()
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp.GetSite())
		}
		s := resp.GetSite()
		if c.Bool("quiet") {
			_, err = fmt.Fprintln(c.App.Writer, s.GetCurrent())
			return err
		}
		for _, v := range s.GetVersions() {
			if v.Version == s.Current {
				fmt.Fprintf(c.App.Writer, "Deployed site %s version %d: %s, %s (bundle %s, %s)\n", s.Name, v.Version, count(int64(v.Files), "file"),
					humanSize(v.ContentBytes), shortDigest(v.BundleDigest), humanSize(v.BundleSize))
			}
		}
		_, err = fmt.Fprintf(c.App.Writer, "Serving %s on %s\n", s.GetSpec().GetPathPrefix(), strings.Join(s.GetSpec().GetHosts(), ", "))
		return err
	})
}

func siteList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("site ls takes no arguments, got %q", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Edge.ListSites(ctx, &ccv1.ListSitesRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		if c.Bool("quiet") {
			for _, s := range resp.Sites {
				fmt.Fprintln(c.App.Writer, s.Name)
			}
			return nil
		}
		now := time.Now()
		w := table(c)
		fmt.Fprintf(w, "NAME\tHOSTS\tPATH\tTLS\tCURRENT\tKEPT\tDEPLOYED\n")
		for _, s := range resp.Sites {
			var kept []string
			for _, v := range s.Versions {
				kept = append(kept, strconv.FormatUint(uint64(v.Version), 10))
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, strings.Join(s.GetSpec().GetHosts(), ","), s.GetSpec().GetPathPrefix(),
				tlsWord(s.GetSpec().GetTls()), s.Current, strings.Join(kept, ","), siteAge(s, now))
		}
		return w.Flush()
	})
}

func siteInspect(c *cli.Context) error {
	name, err := oneName(c, "site inspect", "ccctl site inspect docs")
	if err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Edge.GetSite(ctx, &ccv1.GetSiteRequest{Name: name})
		if err != nil {
			return err
		}
		return printJSON(c, resp.GetSite())
	})
}

func siteRollback(c *cli.Context) error {
	name, err := oneName(c, "site rollback", "ccctl site rollback docs")
	if err != nil {
		return err
	}
	var to uint32
	if c.IsSet("to") {
		n, err := strconv.ParseUint(c.String("to"), 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("--to %q: a version number (see ccctl site inspect %s)", c.String("to"), name)
		}
		to = uint32(n)
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Edge.RollbackSite(ctx, &ccv1.RollbackSiteRequest{Name: name, Version: to})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp.GetSite())
		}
		_, err = fmt.Fprintf(c.App.Writer, "Site %s now serves version %d\n", name, resp.GetSite().GetCurrent())
		return err
	})
}
