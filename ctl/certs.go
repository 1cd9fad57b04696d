package ctl

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func certCommand() *cli.Command {
	return &cli.Command{
		Name:  "cert",
		Usage: "manage the certificates the edge serves over HTTPS",
		Description: "A certificate is added with its key (manual), or obtained and renewed from the cluster's\n" +
			"ACME CA for the hosts of routes and sites with --tls auto. Every edge node serves the same\n" +
			"certificates; a key is never shown again. Examples:\n" +
			"  ccctl cert add example-com --cert fullchain.pem --key privkey.pem\n" +
			"  ccctl route update web --tls example-com\n" +
			"  ccctl cert ls\n" +
			"  ccctl cert inspect example-com\n" +
			"  ccctl cert inspect example-com --pem | openssl x509 -noout -text\n" +
			"  ccctl cert add example-com --cert new.pem --key new-key.pem --replace\n" +
			"  ccctl cert renew shop.example.com\n" +
			"  ccctl cert rm example-com",
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "add a certificate chain and its private key", ArgsUsage: "NAME", OnUsageError: usageError,
				Description: "--cert is the PEM chain, the leaf (the certificate of the hosts) first, then its\n" +
					"intermediates (Let's Encrypt's fullchain.pem); --key is the leaf's PEM private key\n" +
					"(privkey.pem). A single file with both may go to --cert alone. The key must match the\n" +
					"leaf, and an expired chain is refused. Examples:\n" +
					"  ccctl cert add example-com --cert fullchain.pem --key privkey.pem\n" +
					"  ccctl cert add example-com --cert combined.pem\n" +
					"  ccctl cert add example-com --cert fullchain.pem --key privkey.pem --replace",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "cert", Usage: "read the PEM certificate chain, leaf first, from `FILE`", Required: true},
					&cli.StringFlag{Name: "key", Usage: "read the PEM private key from `FILE` (default: the one in --cert)"},
					&cli.BoolFlag{Name: "replace", Usage: "replace the manual certificate of that name (routes and sites that name it serve the new one)"},
				},
				Action: certAdd,
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list certificates: hosts, issuer, expiry, renewal, users", OnUsageError: usageError,
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the names"}},
				Action: certList,
			},
			{
				Name: "inspect", Usage: "show a certificate: all its fields, or its chain with --pem", ArgsUsage: "NAME", OnUsageError: usageError,
				Description: "Examples:\n  ccctl cert inspect example-com\n  ccctl cert inspect example-com -o json\n" +
					"  ccctl cert inspect example-com --pem > chain.pem",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "pem", Usage: "print only the certificate chain, in PEM, leaf first"}},
				Action: certInspect,
			},
			{
				Name: "renew", Usage: "renew ACME certificates now", ArgsUsage: "NAME...", OnUsageError: usageError,
				Description: "The leader renews ACME certificates by itself when due (see RENEWAL in ccctl cert ls);\n" +
					"this asks for a renewal now, e.g. after a failure was fixed. A manual certificate is\n" +
					"replaced with ccctl cert add NAME --replace instead. Example:\n  ccctl cert renew shop.example.com",
				Action: func(c *cli.Context) error {
					return eachArg(c, "cert renew", 0, func(ctx context.Context, cl *Client, name string) error {
						resp, err := cl.Certs.RenewCert(ctx, &ccv1.RenewCertRequest{Name: name})
						if err != nil {
							return err
						}
						if jsonOut(c) {
							return printJSON(c, resp.GetCert())
						}
						_, err = fmt.Fprintf(c.App.Writer, "%s: %s (see ccctl cert ls)\n", name, renewalWord(resp.GetCert()))
						return err
					})
				},
			},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove certificates", ArgsUsage: "NAME...", OnUsageError: usageError,
				Description: "A certificate a route or site names (USED BY in ccctl cert ls) is refused: point them\n" +
					"at another first (ccctl route update NAME --tls auto). Example:\n  ccctl cert rm example-com old-example-com",
				Action: func(c *cli.Context) error {
					return eachArg(c, "cert rm", 0, func(ctx context.Context, cl *Client, name string) error {
						resp, err := cl.Certs.RemoveCert(ctx, &ccv1.RemoveCertRequest{Name: name})
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

// pemBlocks splits a PEM file into its certificates and its private keys;
// rest counts the other blocks. Text around the blocks is left out.
func pemBlocks(data []byte) (certs, keys []*pem.Block, rest int) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs, keys, rest
		}
		switch {
		case b.Type == "CERTIFICATE":
			certs = append(certs, b)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			keys = append(keys, b)
		default:
			rest++
		}
	}
}

// readCertFiles reads --cert and --key for cert add: the chain's
// certificates and the key, re-encoded without the text around them. It
// catches swapped files, encrypted keys and a chain without its leaf
// first; the server checks the rest.
func readCertFiles(certFile, keyFile string) (chainPEM, keyPEM []byte, err error) {
	read := func(flag, file string) ([]byte, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %v", flag, file, unwrapPath(err))
		}
		return data, nil
	}
	data, err := read("cert", certFile)
	if err != nil {
		return nil, nil, err
	}
	certs, keys, _ := pemBlocks(data)
	switch {
	case len(certs) == 0 && len(keys) > 0:
		return nil, nil, fmt.Errorf("--cert %s holds a private key and no certificate: are --cert and --key swapped? (--cert CHAIN.pem --key KEY.pem)", certFile)
	case len(certs) == 0:
		return nil, nil, fmt.Errorf("--cert %s holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the chain in PEM, e.g. fullchain.pem (from DER: openssl x509 -inform der -in cert.der -out cert.pem)", certFile)
	case len(keys) > 0 && keyFile != "":
		return nil, nil, fmt.Errorf("--cert %s holds a private key too: give the key with --key only, or leave --key out to use the one in %s", certFile, certFile)
	case len(keys) > 1:
		return nil, nil, fmt.Errorf("--cert %s holds %d private keys: give the leaf's key alone with --key", certFile, len(keys))
	case len(keys) == 0 && keyFile == "":
		return nil, nil, fmt.Errorf("--cert %s holds no private key: give it with --key KEY.pem", certFile)
	}
	if keyFile != "" {
		kdata, err := read("key", keyFile)
		if err != nil {
			return nil, nil, err
		}
		kcerts, kkeys, _ := pemBlocks(kdata)
		switch {
		case len(kkeys) == 0 && len(kcerts) > 0:
			return nil, nil, fmt.Errorf("--key %s holds a certificate and no private key: are --cert and --key swapped? (--cert CHAIN.pem --key KEY.pem)", keyFile)
		case len(kkeys) == 0:
			return nil, nil, fmt.Errorf("--key %s holds no PEM private key (-----BEGIN PRIVATE KEY-----): give the key in PEM, e.g. privkey.pem", keyFile)
		case len(kkeys) > 1:
			return nil, nil, fmt.Errorf("--key %s holds %d private keys: give the leaf's key alone", keyFile, len(kkeys))
		}
		keys, certFile = kkeys, keyFile
	}
	key := keys[0]
	if key.Type == "ENCRYPTED PRIVATE KEY" || key.Headers["Proc-Type"] != "" {
		return nil, nil, fmt.Errorf("the private key in %s is encrypted: decrypt it first (openssl pkey -in KEY.pem -out plain-key.pem)", certFile)
	}
	var parsed []*x509.Certificate
	for i, b := range certs {
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("--cert: certificate %d of the chain: %v", i+1, err)
		}
		parsed = append(parsed, x)
		chainPEM = append(chainPEM, pem.EncodeToMemory(b)...)
	}
	if parsed[0].IsCA {
		for _, x := range parsed[1:] {
			if !x.IsCA {
				return nil, nil, fmt.Errorf("--cert: the chain must start with the leaf (%s), then its intermediates; it starts with CA %s", certName(x), certName(parsed[0]))
			}
		}
	}
	return chainPEM, pem.EncodeToMemory(key), nil
}

// certName is a certificate's first DNS name, else its subject.
func certName(x *x509.Certificate) string {
	if len(x.DNSNames) > 0 {
		return x.DNSNames[0]
	}
	return x.Subject.String()
}

func certAdd(c *cli.Context) error {
	name, err := oneName(c, "cert add", "ccctl cert add example-com --cert fullchain.pem --key privkey.pem")
	if err != nil {
		return err
	}
	chain, key, err := readCertFiles(c.String("cert"), c.String("key"))
	if err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Certs.AddCert(ctx, &ccv1.AddCertRequest{Name: name, ChainPem: string(chain), KeyPem: string(key), Replace: c.Bool("replace")})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp.GetCert())
		}
		cert := resp.GetCert()
		verb := "Added"
		if c.Bool("replace") {
			verb = "Stored"
		}
		w := table(c)
		fmt.Fprintf(w, "%s certificate %s\n", verb, cert.GetName())
		fmt.Fprintf(w, "  Hosts:\t%s\n", orDash(strings.Join(cert.GetHosts(), ", ")))
		fmt.Fprintf(w, "  Issuer:\t%s\n", orDash(cert.GetIssuer()))
		fmt.Fprintf(w, "  Not after:\t%s\n", expiry(cert.GetNotAfter(), time.Now(), time.RFC3339))
		fmt.Fprintf(w, "  Key:\t%s\n", orDash(cert.GetKeyType()))
		if len(cert.GetUsedBy()) > 0 {
			fmt.Fprintf(w, "  Used by:\t%s\n", strings.Join(cert.GetUsedBy(), ", "))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if len(cert.GetUsedBy()) == 0 {
			_, err = fmt.Fprintf(c.App.Writer, "Serve it with: ccctl route update ROUTE --tls %s\n", cert.GetName())
		}
		return err
	})
}

func certList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("cert ls takes no arguments, got %q (see one with ccctl cert inspect NAME)", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Certs.ListCerts(ctx, &ccv1.ListCertsRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		if c.Bool("quiet") {
			for _, x := range resp.Certs {
				fmt.Fprintln(c.App.Writer, x.Name)
			}
			return nil
		}
		now := time.Now()
		w := table(c)
		fmt.Fprintf(w, "NAME\tSOURCE\tHOSTS\tISSUER\tNOT AFTER\tRENEWAL\tUSED BY\n")
		for _, x := range resp.Certs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Name, certSource(x.GetSource()), joinSome(x.GetHosts(), 40),
				orDash(shorten(x.GetIssuer(), 30)), expiry(x.GetNotAfter(), now, time.DateOnly), renewalWord(x), joinSome(x.GetUsedBy(), 40))
		}
		return w.Flush()
	})
}

func certInspect(c *cli.Context) error {
	name, err := oneName(c, "cert inspect", "ccctl cert inspect example-com")
	if err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Certs.GetCert(ctx, &ccv1.GetCertRequest{Name: name})
		if err != nil {
			return err
		}
		x := resp.GetCert()
		switch {
		case c.Bool("pem"):
			if x.GetChainPem() == "" {
				return fmt.Errorf("certificate %s has no chain yet (renewal: %s)", name, renewalWord(x))
			}
			_, err := fmt.Fprint(c.App.Writer, strings.TrimRight(x.GetChainPem(), "\n")+"\n")
			return err
		case jsonOut(c):
			return printJSON(c, x)
		}
		now := time.Now()
		w := table(c)
		fmt.Fprintf(w, "Name:\t%s\n", x.GetName())
		fmt.Fprintf(w, "Source:\t%s\n", certSource(x.GetSource()))
		fmt.Fprintf(w, "Hosts:\t%s\n", orDash(strings.Join(x.GetHosts(), ", ")))
		fmt.Fprintf(w, "Subject:\t%s\n", orDash(x.GetSubject()))
		fmt.Fprintf(w, "Issuer:\t%s\n", orDash(x.GetIssuer()))
		fmt.Fprintf(w, "Not before:\t%s\n", when(x.GetNotBefore()))
		fmt.Fprintf(w, "Not after:\t%s\n", expiry(x.GetNotAfter(), now, time.RFC3339))
		fmt.Fprintf(w, "Key type:\t%s\n", orDash(x.GetKeyType()))
		fmt.Fprintf(w, "Serial:\t%s\n", orDash(x.GetSerial()))
		fmt.Fprintf(w, "SHA-256:\t%s\n", orDash(x.GetSha256()))
		fmt.Fprintf(w, "OCSP server:\t%s\n", orDash(x.GetOcspServer()))
		fmt.Fprintf(w, "Chain:\t%s\n", chainSummary(x.GetChainPem()))
		fmt.Fprintf(w, "Renewal:\t%s\n", renewalState(x))
		if x.GetSource() == ccv1.CertSource_CERT_SOURCE_ACME {
			fmt.Fprintf(w, "Renew after:\t%s\n", when(x.GetRenewAfter()))
		}
		if x.GetLastError() != "" {
			fmt.Fprintf(w, "Last error:\t%s\n", oneLine(x.GetLastError()))
			fmt.Fprintf(w, "Last error at:\t%s (%s)\n", when(x.GetLastErrorAt()), ago(x.GetLastErrorAt(), now))
		}
		fmt.Fprintf(w, "Used by:\t%s\n", orDash(strings.Join(x.GetUsedBy(), ", ")))
		fmt.Fprintf(w, "Version:\t%d\n", x.GetVersion())
		fmt.Fprintf(w, "Created:\t%s\n", when(x.GetCreatedAt()))
		fmt.Fprintf(w, "Updated:\t%s\n", when(x.GetUpdatedAt()))
		return w.Flush()
	})
}

// certSource is "manual" or "acme".
func certSource(s ccv1.CertSource) string {
	if s == ccv1.CertSource_CERT_SOURCE_UNSPECIFIED {
		return "-"
	}
	return enumWord(s.String(), "CERT_SOURCE_")
}

// renewalState is a certificate's renewal as a word: "pending", "valid",
// "renewing", "failed"; "-" for a manual certificate (not renewed).
func renewalState(x *ccv1.Cert) string {
	s := x.GetRenewalState()
	if s == ccv1.RenewalState_RENEWAL_STATE_UNSPECIFIED {
		if x.GetSource() == ccv1.CertSource_CERT_SOURCE_MANUAL {
			return "not renewed (manual: replace it with ccctl cert add NAME --replace)"
		}
		return "-"
	}
	return enumWord(s.String(), "RENEWAL_STATE_")
}

// renewalWord is the RENEWAL column of cert ls: the state, and for a
// failure its error, shortened: "failed: acme: 403 urn:…".
func renewalWord(x *ccv1.Cert) string {
	s := x.GetRenewalState()
	switch s {
	case ccv1.RenewalState_RENEWAL_STATE_UNSPECIFIED:
		return "-"
	case ccv1.RenewalState_RENEWAL_STATE_FAILED:
		if msg := shorten(x.GetLastError(), 40); msg != "" {
			return "failed: " + msg
		}
	}
	return enumWord(s.String(), "RENEWAL_STATE_")
}

// expiry prints when a certificate expires, in layout, and how far that
// is: "2027-03-04 (in 89d)", "2026-12-02 (expired 2d ago)".
func expiry(t *timestamppb.Timestamp, now time.Time, layout string) string {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return "-"
	}
	at := t.AsTime()
	d := at.Sub(now)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", at.Local().Format(layout), shortSpan(d))
	}
	return fmt.Sprintf("%s (expired %s ago)", at.Local().Format(layout), shortSpan(-d))
}

// shortSpan prints a duration in its largest unit: "89d", "5h", "3m".
func shortSpan(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// joinSome joins names with commas in at most about max runes: those that
// fit, then "+N" for the others; "-" for none.
func joinSome(names []string, max int) string {
	if len(names) == 0 {
		return "-"
	}
	out := shorten(names[0], max)
	for i, n := range names[1:] {
		if len([]rune(out))+1+len([]rune(n)) > max {
			return fmt.Sprintf("%s +%d", out, len(names)-1-i)
		}
		out += "," + n
	}
	return out
}

// chainSummary describes a PEM chain: "3 certificates (leaf CN, then …)".
func chainSummary(chain string) string {
	certs, _, _ := pemBlocks([]byte(chain))
	if len(certs) == 0 {
		return "-"
	}
	var names []string
	for _, b := range certs {
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			names = append(names, "?")
			continue
		}
		if x.Subject.CommonName != "" {
			names = append(names, x.Subject.CommonName)
		} else {
			names = append(names, certName(x))
		}
	}
	return fmt.Sprintf("%s: %s (print it with --pem)", count(int64(len(certs)), "certificate"), strings.Join(names, " < "))
}

// orDash is s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine joins the lines of s with spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// readPEMCerts reads a file of PEM certificates (--acme-ca-roots), checking
// that each parses.
func readPEMCerts(flag, file string) (string, int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", 0, fmt.Errorf("--%s %s: %v", flag, file, unwrapPath(err))
	}
	certs, keys, _ := pemBlocks(data)
	if len(keys) > 0 {
		return "", 0, fmt.Errorf("--%s %s holds a private key: give only the CA certificates", flag, file)
	}
	if len(certs) == 0 {
		return "", 0, fmt.Errorf("--%s %s holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the CA's root certificates in PEM", flag, file)
	}
	var out bytes.Buffer
	for i, b := range certs {
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return "", 0, fmt.Errorf("--%s %s: certificate %d: %v", flag, file, i+1, err)
		}
		pem.Encode(&out, b)
	}
	return out.String(), len(certs), nil
}
