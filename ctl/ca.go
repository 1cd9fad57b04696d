package ctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func caCommand() *cli.Command {
	return &cli.Command{
		Name:  "ca",
		Usage: "show and rotate the cluster CA",
		Description: "Every server holds the cluster CA key. Rotate the CA when a server's data dir\n" +
			"may have been copied (a removed server whose disk was not wiped, a lost backup):\n\n" +
			"  ccctl ca rotate    a new CA signs node certificates from now on and both CAs are\n" +
			"                     trusted; agents renew within seconds; servers hold a certificate\n" +
			"                     of the new CA but present the old one's until the retirement\n" +
			"  ccctl ca status    lists the servers and nodes not ready yet\n" +
			"  ccctl ca retire    once none are: servers present their new certificates and the\n" +
			"                     old CA is no longer trusted anywhere\n\n" +
			"Every ccctl context must run a command between rotate and retire (it then fetches\n" +
			"the new CA), or get the new tls/ca.crt from a server. Join tokens made before the\n" +
			"retirement name the old CA: create new ones after it.",
		Subcommands: []*cli.Command{
			{Name: "status", Usage: "show the trusted CAs and who still holds a certificate of a CA being retired", Action: caStatus, OnUsageError: usageError},
			{Name: "rotate", Usage: "create a new cluster CA that signs from now on (the old one stays trusted until `ccctl ca retire`)", Action: caRotate, OnUsageError: usageError},
			{
				Name: "retire", Usage: "stop trusting every CA but the signing one (refused while servers or nodes still use one)",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "retire even though some servers or nodes still use an old CA: they are refused from then on"}},
				Action: caRetire, OnUsageError: usageError,
			},
		},
	}
}

func caStatus(c *cli.Context) error {
	if c.NArg() != 0 {
		return errors.New("ca status takes no arguments")
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Trust.GetCAStatus(ctx, &ccv1.GetCAStatusRequest{})
		if err != nil {
			return err
		}
		return printCAStatus(c, resp.Status)
	})
}

func caRotate(c *cli.Context) error {
	if c.NArg() != 0 {
		return errors.New("ca rotate takes no arguments")
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Trust.RotateCA(ctx, &ccv1.RotateCARequest{})
		if err != nil {
			return err
		}
		// This context trusts the new CA at once.
		if _, err := cl.refreshTrust(ctx, true); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "warning: this context's CA list was not refreshed (%v): run `ccctl ca status` before retiring\n", err)
		}
		if jsonOut(c) {
			return printJSON(c, resp.Status)
		}
		fmt.Fprintf(c.App.Writer, "The cluster CA was rotated: %s signs from now on.\n", resp.Status.Cas[0].Sha256)
		fmt.Fprintf(c.App.Writer, "Use every ccctl context once so that it learns the new CA. When `ccctl ca status` lists no server or node, run `ccctl ca retire`, then create new join tokens.\n\n")
		return printCAStatus(c, resp.Status)
	})
}

func caRetire(c *cli.Context) error {
	if c.NArg() != 0 {
		return errors.New("ca retire takes no arguments")
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Trust.RetireCA(ctx, &ccv1.RetireCARequest{Force: c.Bool("force")})
		if err != nil {
			return err
		}
		if _, err := cl.refreshTrust(ctx, true); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "warning: this context's CA list was not refreshed (%v)\n", err)
		}
		if jsonOut(c) {
			return printJSON(c, resp.Status)
		}
		fmt.Fprintf(c.App.Writer, "Only the signing CA is trusted now.\n\n")
		return printCAStatus(c, resp.Status)
	})
}

func printCAStatus(c *cli.Context, st *ccv1.CAStatus) error {
	if jsonOut(c) {
		return printJSON(c, st)
	}
	w := table(c)
	fmt.Fprintf(w, "CA SHA-256\tSUBJECT\tNOT AFTER\tSIGNING\n")
	for _, ca := range st.Cas {
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", ca.Sha256, ca.Subject, ca.NotAfter.AsTime().UTC().Format(time.RFC3339), ca.Signing)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(st.Cas) < 2 {
		return nil
	}
	if len(st.Pending) == 0 {
		fmt.Fprintf(c.App.Writer, "\nNo server or node holds a certificate of a CA being retired: `ccctl ca retire` may run.\n")
		return nil
	}
	fmt.Fprintf(c.App.Writer, "\nStill on a CA being retired:\n")
	w = table(c)
	fmt.Fprintf(w, "KIND\tID\tNAME\tCA SHA-256\n")
	for _, h := range st.Pending {
		ca := h.CaSha256
		if ca == "" {
			ca = "unknown"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", h.Kind, h.Id, h.Name, ca)
	}
	return w.Flush()
}
