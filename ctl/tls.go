package ctl

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The HTTPS options of routes and sites (EdgeTLSOptions): the flags of
// route create|update and site deploy, and the keys of the edge file.

// tlsFlagNames are the flags tlsFlags returns.
var tlsFlagNames = []string{"tls", "no-https-redirect", "hsts", "hsts-subdomains"}

// tlsFlags are the HTTPS flags of route create|update and site deploy.
func tlsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "tls", Usage: "serve over HTTPS with `CERT`: auto (a certificate per host from the cluster's ACME CA), the name of a certificate (ccctl cert ls), or off"},
		&cli.BoolFlag{Name: "no-https-redirect", Usage: "serve plain HTTP too instead of redirecting it to HTTPS (--no-https-redirect=false: redirect again)"},
		&cli.StringFlag{Name: "hsts", Usage: "send Strict-Transport-Security with max-age `DURATION` on HTTPS responses (e.g. 8760h, 365d or 31536000s; 0: none)"},
		&cli.BoolFlag{Name: "hsts-subdomains", Usage: "add includeSubDomains to Strict-Transport-Security (with --hsts)"},
	}
}

// tlsFlagsSet says whether any HTTPS flag was given.
func tlsFlagsSet(c *cli.Context) bool {
	for _, f := range tlsFlagNames {
		if c.IsSet(f) {
			return true
		}
	}
	return false
}

// applyTLSFlags returns cur changed as the HTTPS flags given say (cur
// itself is left alone). HTTPS off is nil: --tls off drops the other
// options, and giving them without a certificate is refused.
func applyTLSFlags(c *cli.Context, cur *ccv1.EdgeTLSOptions) (*ccv1.EdgeTLSOptions, error) {
	if !tlsFlagsSet(c) {
		return cur, nil
	}
	opts := &ccv1.EdgeTLSOptions{}
	if cur != nil {
		opts = proto.Clone(cur).(*ccv1.EdgeTLSOptions)
	}
	if c.IsSet("tls") {
		cert, err := parseTLSCert("--tls", c.String("tls"))
		if err != nil {
			return nil, err
		}
		if cert == "" {
			// Off: the other options apply to HTTPS only.
			switch {
			case c.Bool("no-https-redirect"):
				return nil, errors.New("--no-https-redirect goes with HTTPS: drop it, or use --tls auto or --tls CERT")
			case c.Bool("hsts-subdomains"):
				return nil, errors.New("--hsts-subdomains goes with HTTPS: drop it, or use --tls auto or --tls CERT")
			case c.IsSet("hsts"):
				if n, err := parseHSTS("--hsts", c.String("hsts")); err != nil || n != 0 {
					return nil, errors.New("--hsts goes with HTTPS: drop it, or use --tls auto or --tls CERT")
				}
			}
			return nil, nil
		}
		opts.Cert = cert
	}
	if c.IsSet("no-https-redirect") {
		opts.NoRedirect = c.Bool("no-https-redirect")
	}
	if c.IsSet("hsts") {
		n, err := parseHSTS("--hsts", c.String("hsts"))
		if err != nil {
			return nil, err
		}
		opts.HstsMaxAgeSeconds = n
		if n == 0 && !c.IsSet("hsts-subdomains") {
			opts.HstsIncludeSubdomains = false
		}
	}
	if c.IsSet("hsts-subdomains") {
		opts.HstsIncludeSubdomains = c.Bool("hsts-subdomains")
	}
	if opts.Cert == "" || opts.Cert == "off" {
		// HTTP only: fine as long as no HTTPS option is left on.
		for _, o := range []struct {
			flag string
			on   bool
		}{{"--no-https-redirect", opts.NoRedirect}, {"--hsts", opts.HstsMaxAgeSeconds > 0}, {"--hsts-subdomains", opts.HstsIncludeSubdomains}} {
			if o.on {
				return nil, fmt.Errorf("%s goes with HTTPS: add --tls auto (a certificate from the ACME CA) or --tls CERT (see ccctl cert ls)", o.flag)
			}
		}
		return nil, nil
	}
	if opts.HstsIncludeSubdomains && opts.HstsMaxAgeSeconds == 0 {
		return nil, errors.New("--hsts-subdomains goes with --hsts (e.g. --hsts 8760h --hsts-subdomains)")
	}
	return opts, nil
}

// parseTLSCert reads what serves HTTPS: "auto", the name of a certificate,
// or "off" ("" returned).
func parseTLSCert(what, s string) (string, error) {
	v := strings.TrimSpace(s)
	switch strings.ToLower(v) {
	case "auto":
		return "auto", nil
	case "off":
		return "", nil
	case "", "on", "true", "yes", "false", "no", "none":
		return "", fmt.Errorf("%s %q: use auto (a certificate from the cluster's ACME CA), the name of a certificate (see ccctl cert ls), or off", what, s)
	}
	if strings.ContainsAny(v, " \t/") {
		return "", fmt.Errorf("%s %q: not a certificate name (see ccctl cert ls); use auto, a name, or off", what, s)
	}
	return v, nil
}

// maxHSTS is the longest HSTS max-age the server takes: two years.
const maxHSTS = 2 * 365 * 24 * 3600

// parseHSTS reads an HSTS max-age: a duration (8760h, 31536000s), whole
// days (365d) or a number of seconds; 0 is none. It must be whole seconds,
// at most two years.
func parseHSTS(what, s string) (uint32, error) {
	n, err := parseHSTSValue(what, s)
	if err == nil && n > maxHSTS {
		return 0, fmt.Errorf("%s %q: at most two years (17520h, 730d or %ds)", what, s, maxHSTS)
	}
	return n, err
}

func parseHSTSValue(what, s string) (uint32, error) {
	v := strings.TrimSpace(s)
	bad := func(why string) error {
		return fmt.Errorf("%s %q: %s (e.g. 8760h, 365d or 31536000s; 0: no header)", what, s, why)
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > math.MaxUint32 {
			return 0, bad("too long")
		}
		return uint32(n), nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 64)
		if err != nil {
			return 0, bad("use a duration")
		}
		if n > math.MaxUint32/86400 {
			return 0, bad("too long")
		}
		return uint32(n * 86400), nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, bad("use a duration")
	case d < 0:
		return 0, bad("use a duration of 0 or more")
	case d%time.Second != 0:
		return 0, bad("use whole seconds")
	case d/time.Second > math.MaxUint32:
		return 0, bad("too long")
	}
	return uint32(d / time.Second), nil
}

// formatHSTS is parseHSTS's inverse: "8760h", "1h30m", "45s".
func formatHSTS(seconds uint32) string {
	if seconds == 0 {
		return "0"
	}
	h, m, s := seconds/3600, seconds%3600/60, seconds%60
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s > 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}

// tlsWord is the TLS column of route ls and site ls: the certificate
// ("auto" or its name), "-" for HTTP only, "+http" when plain HTTP is
// served too.
func tlsWord(o *ccv1.EdgeTLSOptions) string {
	cert := o.GetCert()
	if cert == "" || cert == "off" {
		return "-"
	}
	if o.GetNoRedirect() {
		cert += " +http"
	}
	return cert
}

// checkTLSFlagValues reads the values of --tls and --hsts, so that a typo
// is reported before anything is sent or read.
func checkTLSFlagValues(c *cli.Context) error {
	if c.IsSet("tls") {
		if _, err := parseTLSCert("--tls", c.String("tls")); err != nil {
			return err
		}
	}
	if c.IsSet("hsts") {
		if _, err := parseHSTS("--hsts", c.String("hsts")); err != nil {
			return err
		}
	}
	return nil
}
