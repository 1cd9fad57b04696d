package ctl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ACME directories ccctl knows by name.
const (
	letsEncryptDirectory        = "https://acme-v02.api.letsencrypt.org/directory"
	letsEncryptStagingDirectory = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// edgeSettingFlags are the flags of cluster settings that change the edge
// settings.
var edgeSettingFlags = []string{"acme-directory", "acme-email", "acme-eab-kid", "acme-eab-hmac", "acme-eab-hmac-file",
	"acme-ca-roots", "acme-challenges", "edge-http3", "edge-default-cert"}

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name: "cluster", Usage: "show and change the cluster-wide settings",
		Subcommands: []*cli.Command{
			{
				Name: "settings", Usage: "show the cluster-wide settings, or change those the flags name", OnUsageError: usageError,
				Description: "The scheduling strategy chooses among the nodes where a new task fits:\n" +
					"  spread   the node with the fewest tasks of its service, then the fewest tasks (the default)\n" +
					"  binpack  the fullest node, keeping others free for large tasks\n" +
					"It applies to tasks placed from then on; running tasks stay where they are.\n\n" +
					"The limits cap what one job, container or service task may ask for: --max-memory, --max-cpus\n" +
					"and --max-pids. A spec above a cap is refused when it is submitted, with the cap in the reason.\n" +
					"By default a job's memory and CPUs are capped at what the largest node has (a container or\n" +
					"service task above every node waits, pending, for one that fits), and pids at 32768 (the\n" +
					"most --max-pids may be). 0 puts a cap back to its default. Jobs and tasks already placed keep\n" +
					"their limits.\n\n" +
					"The quotas bound what one API token may hold: --quota-jobs, its jobs queued, assigned or\n" +
					"running; --quota-output-bytes, the output its finished jobs keep until it expires. A job\n" +
					"over a quota is refused when it is submitted (ResourceExhausted, naming the quota and the\n" +
					"use). 0, the default, means no quota. Jobs already submitted are kept.\n\n" +
					"The audit retention bounds the audit trail (docs/audit.md): an event older than\n" +
					"--audit-max-age, or beyond the newest --audit-max-events, is dropped when the next is\n" +
					"written. 0 puts the default back (90 days, 100000 events).\n\n" +
					"--allow-privileged=true lets admin tokens run containers with --privileged or\n" +
					"--security-opt seccomp=unconfined (off by default: such a container can take over its node).\n\n" +
					"The edge settings are how the edge serves HTTPS: the ACME CA that issues the certificates\n" +
					"of routes and sites with --tls auto (Let's Encrypt unless --acme-directory says otherwise),\n" +
					"its account (--acme-email, and an external account binding when the CA asks for one),\n" +
					"the challenges it may use (http-01 needs port 80 of the edge nodes reachable from the\n" +
					"internet, tls-alpn-01 port 443), HTTP/3, and the certificate for handshakes no other\n" +
					"certificate covers. A flag changes only its setting; the others are kept. The HMAC key is\n" +
					"never shown: it reads \"set\" or \"not set\".\n\n" +
					"Examples:\n  ccctl cluster settings\n  ccctl cluster settings --scheduling-strategy binpack\n" +
					"  ccctl cluster settings --acme-email ops@example.com\n" +
					"  ccctl cluster settings --acme-directory letsencrypt-staging\n" +
					"  ccctl cluster settings --acme-directory https://ca.internal:9000/acme/acme/directory --acme-ca-roots root.pem\n" +
					"  ccctl cluster settings --acme-directory https://acme.zerossl.com/v2/DV90 --acme-eab-kid KID --acme-eab-hmac-file hmac.txt\n" +
					"  ccctl cluster settings --acme-challenges tls-alpn-01 --edge-http3 true\n" +
					"  ccctl cluster settings --edge-default-cert example-com",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "scheduling-strategy", Usage: "`STRATEGY` of the scheduler: spread or binpack"},
					&cli.StringFlag{Name: "max-memory", Usage: "cap the memory limit of one job, container or task at `SIZE`, e.g. 64g (0: the default, the largest node's memory)"},
					&cli.StringFlag{Name: "max-cpus", Usage: "cap the CPU limit of one job, container or task at `N` cores, e.g. 16 (0: the default, the largest node's CPUs)"},
					&cli.StringFlag{Name: "max-pids", Usage: "cap the pids limit of one job, container or task at `N`, at most 32768 (0: the default, 32768)"},
					&cli.StringFlag{Name: "max-disk", Usage: "cap the disk limit (--disk) of one container or task at `SIZE`, e.g. 10g (0: no cap, the default)"},
					&cli.StringFlag{Name: "quota-jobs", Usage: "let one token have at most `N` jobs queued, assigned or running (0: no quota, the default)"},
					&cli.StringFlag{Name: "quota-output-bytes", Usage: "let one token keep at most `SIZE` of job output, e.g. 10g (0: no quota, the default)"},
					&cli.StringFlag{Name: "audit-max-age", Usage: "keep audit events `DURATION`, e.g. 2160h (0: the default, 90 days)"},
					&cli.StringFlag{Name: "audit-max-events", Usage: "keep the newest `N` audit events (0: the default, 100000)"},
					&cli.BoolFlag{Name: "allow-privileged", Usage: "let admin tokens run privileged containers and containers without a seccomp filter (default: false)"},
					&cli.StringFlag{Name: "acme-directory", Usage: "get certificates from the ACME directory at `URL` (letsencrypt: the default; letsencrypt-staging: its staging CA)"},
					&cli.StringFlag{Name: "acme-email", Usage: "register the ACME account with contact `EMAIL` (\"\": none)"},
					&cli.StringFlag{Name: "acme-eab-kid", Usage: "external account binding: the `KEY_ID` the CA gives, with its HMAC key (\"\": no binding)"},
					&cli.StringFlag{Name: "acme-eab-hmac", Usage: "external account binding: the HMAC `KEY` the CA gives, base64url (visible to other local users: prefer --acme-eab-hmac-file)"},
					&cli.StringFlag{Name: "acme-eab-hmac-file", Usage: "read the external account binding's HMAC key from `FILE` (-: standard input)"},
					&cli.StringFlag{Name: "acme-ca-roots", Usage: "trust the PEM root certificates of `FILE` for the ACME directory's HTTPS, e.g. a private CA (\"\": the system's)"},
					&cli.StringFlag{Name: "acme-challenges", Usage: "let the ACME CA check hosts with `TYPES`: http-01, tls-alpn-01 or both, comma-separated"},
					&cli.StringFlag{Name: "edge-http3", Usage: "serve HTTP/3 (QUIC, UDP 443) on every edge node: `BOOL` true or false"},
					&cli.StringFlag{Name: "edge-default-cert", Usage: "serve certificate `NAME` for handshakes no certificate covers (\"\": none)"},
				},
				Action: clusterSettings,
			},
		},
	}
}

func clusterSettings(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("cluster settings takes no arguments, got %q (change a setting with its flag, e.g. --scheduling-strategy binpack)", c.Args().Slice())
	}
	var update *ccv1.UpdateSettingsRequest
	if c.IsSet("scheduling-strategy") {
		s, err := parseStrategy(c.String("scheduling-strategy"))
		if err != nil {
			return err
		}
		update = &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{SchedulingStrategy: s}}
	}
	limits, err := parseLimitFlags(c)
	if err != nil {
		return err
	}
	if limits != nil {
		if update == nil {
			update = &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{}}
		}
		update.Settings.Limits = limits
	}
	quotas, err := parseQuotaFlags(c)
	if err != nil {
		return err
	}
	if quotas != nil {
		if update == nil {
			update = &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{}}
		}
		update.Settings.Quotas = quotas
	}
	audit, err := parseAuditFlags(c)
	if err != nil {
		return err
	}
	if audit != nil {
		if update == nil {
			update = &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{}}
		}
		update.Settings.Audit = audit
	}
	if c.IsSet("allow-privileged") {
		if update == nil {
			update = &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{}}
		}
		update.Settings.Security = &ccv1.SecuritySettings{AllowPrivileged: proto.Bool(c.Bool("allow-privileged"))}
	}
	editEdge, err := parseEdgeSettingFlags(c)
	if err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		if editEdge != nil {
			// The edge settings go whole: read them, change what the
			// flags say. An empty HMAC key keeps the stored one.
			st, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
			if err != nil {
				return err
			}
			edge := &ccv1.EdgeSettings{}
			if cur := st.GetSettings().GetEdge(); cur != nil {
				edge = proto.Clone(cur).(*ccv1.EdgeSettings)
			}
			// The server keeps the stored HMAC key only for the same key id.
			oldKid, hmacStored := edge.AcmeEabKeyId, edge.AcmeEabHmacKeySet
			edge.AcmeEabHmacKey, edge.AcmeEabHmacKeySet = "", false
			editEdge(edge)
			switch {
			case edge.AcmeEabHmacKey != "" && edge.AcmeEabKeyId == "":
				return errors.New("the external account binding needs its key id too: add --acme-eab-kid KEY_ID")
			case edge.AcmeEabKeyId != "" && edge.AcmeEabHmacKey == "" && (edge.AcmeEabKeyId != oldKid || !hmacStored):
				return errors.New("the external account binding needs the HMAC key of that key id too: add --acme-eab-hmac-file FILE (or --acme-eab-hmac KEY)")
			}
			if update == nil {
				update = &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{}}
			}
			update.Settings.Edge = edge
		}
		var settings *ccv1.Settings
		if update != nil {
			resp, err := cl.Cluster.UpdateSettings(ctx, update)
			if err != nil {
				return err
			}
			settings = resp.GetSettings()
		} else {
			st, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
			if err != nil {
				return err
			}
			settings = st.GetSettings()
		}
		if jsonOut(c) {
			if settings == nil {
				settings = &ccv1.Settings{}
			}
			if settings.Edge == nil {
				settings.Edge = &ccv1.EdgeSettings{}
			}
			settings.Edge.AcmeEabHmacKey = ""
			return printJSON(c, settings)
		}
		w := table(c)
		fmt.Fprintf(w, "Scheduling strategy:\t%s\n", schedulingStrategy(settings.GetSchedulingStrategy()))
		printLimitSettings(w, settings.GetLimits())
		printQuotaSettings(w, settings.GetQuotas())
		printAuditSettings(w, settings.GetAudit())
		fmt.Fprintf(w, "Allow privileged:\t%v\n", settings.GetSecurity().GetAllowPrivileged())
		printEdgeSettings(w, settings.GetEdge())
		return w.Flush()
	})
}

// maxPids is the most --max-pids may be, and its default.
const maxPids = 32768

// parseLimitFlags reads --max-memory, --max-cpus and --max-pids: the caps
// to change (a 0 puts the default back), or nil when none is set.
func parseLimitFlags(c *cli.Context) (*ccv1.LimitSettings, error) {
	var out *ccv1.LimitSettings
	set := func(dst **int64, v int64) { *dst = proto.Int64(v) }
	if c.IsSet("max-memory") {
		n, err := parseSize("max-memory", c.String("max-memory"))
		if err != nil {
			return nil, err
		}
		if n > 0 && n < 4<<20 {
			return nil, fmt.Errorf("--max-memory %q: at least 4m (0: the default, the largest node's memory)", c.String("max-memory"))
		}
		set(&limitsOrNew(&out).MaxMemoryBytes, n)
	}
	if c.IsSet("max-cpus") {
		n, err := parseCPUs("max-cpus", c.String("max-cpus"))
		if err != nil {
			return nil, err
		}
		set(&limitsOrNew(&out).MaxCpuMillis, n)
	}
	if c.IsSet("max-pids") {
		n, err := strconv.ParseInt(strings.TrimSpace(c.String("max-pids")), 10, 64)
		if err != nil || n < 0 || n > maxPids {
			return nil, fmt.Errorf("--max-pids %q: a number of processes from 1 to %d (0: the default, %d)", c.String("max-pids"), maxPids, maxPids)
		}
		set(&limitsOrNew(&out).MaxPids, n)
	}
	if c.IsSet("max-disk") {
		n, err := parseSize("max-disk", c.String("max-disk"))
		if err != nil {
			return nil, err
		}
		if n > 0 && n < 16<<20 {
			return nil, fmt.Errorf("--max-disk %q: at least 16m (0: no cap, the default)", c.String("max-disk"))
		}
		set(&limitsOrNew(&out).MaxDiskBytes, n)
	}
	return out, nil
}

// parseQuotaFlags reads --quota-jobs and --quota-output-bytes: the quotas
// to change (0 removes one), or nil when neither is set.
func parseQuotaFlags(c *cli.Context) (*ccv1.QuotaSettings, error) {
	var out *ccv1.QuotaSettings
	orNew := func() *ccv1.QuotaSettings {
		if out == nil {
			out = &ccv1.QuotaSettings{}
		}
		return out
	}
	if c.IsSet("quota-jobs") {
		n, err := strconv.ParseInt(strings.TrimSpace(c.String("quota-jobs")), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--quota-jobs %q: a number of jobs, like 100 (0: no quota)", c.String("quota-jobs"))
		}
		orNew().JobsPerToken = proto.Int64(n)
	}
	if c.IsSet("quota-output-bytes") {
		n, err := parseSize("quota-output-bytes", c.String("quota-output-bytes"))
		if err != nil {
			return nil, err
		}
		orNew().OutputBytesPerToken = proto.Int64(n)
	}
	return out, nil
}

// printQuotaSettings prints the per-token quotas as key value lines.
func printQuotaSettings(w io.Writer, q *ccv1.QuotaSettings) {
	jobs, output := "none (default)", "none (default)"
	if n := q.GetJobsPerToken(); n > 0 {
		jobs = strconv.FormatInt(n, 10)
	}
	if n := q.GetOutputBytesPerToken(); n > 0 {
		output = humanSize(n)
	}
	fmt.Fprintf(w, "Jobs per token:\t%s\n", jobs)
	fmt.Fprintf(w, "Output per token:\t%s\n", output)
}

// limitsOrNew makes *l when it is nil, and returns it.
func limitsOrNew(l **ccv1.LimitSettings) *ccv1.LimitSettings {
	if *l == nil {
		*l = &ccv1.LimitSettings{}
	}
	return *l
}

// printLimitSettings prints the caps as key value lines, saying which are
// the defaults.
func printLimitSettings(w io.Writer, l *ccv1.LimitSettings) {
	memory, cpus, pids := "largest node's (default)", "largest node's (default)", fmt.Sprintf("%d (default)", maxPids)
	if n := l.GetMaxMemoryBytes(); n > 0 {
		memory = humanSize(n)
	}
	if n := l.GetMaxCpuMillis(); n > 0 {
		cpus = formatCPU(n)
	}
	if n := l.GetMaxPids(); n > 0 {
		pids = strconv.FormatInt(n, 10)
	}
	fmt.Fprintf(w, "Max memory:\t%s\n", memory)
	fmt.Fprintf(w, "Max CPUs:\t%s\n", cpus)
	fmt.Fprintf(w, "Max pids:\t%s\n", pids)
	disk := "none (default)"
	if n := l.GetMaxDiskBytes(); n > 0 {
		disk = humanSize(n)
	}
	fmt.Fprintf(w, "Max disk:\t%s\n", disk)
}

// printEdgeSettings prints the edge settings as key value lines, the
// HMAC key as "set" or "not set".
func printEdgeSettings(w io.Writer, e *ccv1.EdgeSettings) {
	fmt.Fprintf(w, "HTTP/3:\t%s\n", onOff(e.GetHttp3()))
	fmt.Fprintf(w, "Default certificate:\t%s\n", orDash(e.GetDefaultCert()))
	dir := e.GetAcmeDirectory()
	switch dir {
	case "", letsEncryptDirectory:
		dir = "Let's Encrypt (default)"
	case letsEncryptStagingDirectory:
		dir += " (Let's Encrypt staging)"
	}
	fmt.Fprintf(w, "ACME directory:\t%s\n", dir)
	fmt.Fprintf(w, "ACME email:\t%s\n", orDash(e.GetAcmeEmail()))
	fmt.Fprintf(w, "ACME EAB key id:\t%s\n", orDash(e.GetAcmeEabKeyId()))
	hmac := "not set"
	if e.GetAcmeEabHmacKeySet() {
		hmac = "set"
	}
	fmt.Fprintf(w, "ACME EAB HMAC key:\t%s\n", hmac)
	roots := "the system's"
	if pemRoots := e.GetAcmeCaRootsPem(); pemRoots != "" {
		certs, _, _ := pemBlocks([]byte(pemRoots))
		roots = count(int64(len(certs)), "certificate")
	}
	fmt.Fprintf(w, "ACME CA roots:\t%s\n", roots)
	fmt.Fprintf(w, "ACME challenges:\t%s\n", challengeWords(e))
}

// challengeWords lists the ACME challenges that are on.
func challengeWords(e *ccv1.EdgeSettings) string {
	var on []string
	if !e.GetAcmeDisableHttp01() {
		on = append(on, "http-01")
	}
	if !e.GetAcmeDisableTlsAlpn01() {
		on = append(on, "tls-alpn-01")
	}
	if len(on) == 0 {
		return "none (no ACME certificate can be obtained)"
	}
	return strings.Join(on, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// parseEdgeSettingFlags reads the edge flags of cluster settings (files
// too) into a function that makes the change, nil when none is given.
func parseEdgeSettingFlags(c *cli.Context) (func(*ccv1.EdgeSettings), error) {
	given := false
	for _, f := range edgeSettingFlags {
		given = given || c.IsSet(f)
	}
	if !given {
		return nil, nil
	}
	var edits []func(*ccv1.EdgeSettings)
	edit := func(fn func(*ccv1.EdgeSettings)) { edits = append(edits, fn) }
	if c.IsSet("acme-directory") {
		dir, err := parseACMEDirectory(c.String("acme-directory"))
		if err != nil {
			return nil, err
		}
		edit(func(e *ccv1.EdgeSettings) { e.AcmeDirectory = dir })
	}
	if c.IsSet("acme-email") {
		email := strings.TrimPrefix(strings.TrimSpace(c.String("acme-email")), "mailto:")
		if email != "" && (!strings.Contains(email, "@") || strings.ContainsAny(email, " \t,")) {
			return nil, fmt.Errorf("--acme-email %q: one email address, e.g. ops@example.com (\"\": none)", c.String("acme-email"))
		}
		edit(func(e *ccv1.EdgeSettings) { e.AcmeEmail = email })
	}
	if c.IsSet("acme-eab-kid") {
		kid := strings.TrimSpace(c.String("acme-eab-kid"))
		edit(func(e *ccv1.EdgeSettings) { e.AcmeEabKeyId = kid })
	}
	if c.IsSet("acme-eab-hmac") || c.IsSet("acme-eab-hmac-file") {
		hmac, err := readEABHMAC(c)
		if err != nil {
			return nil, err
		}
		edit(func(e *ccv1.EdgeSettings) { e.AcmeEabHmacKey = hmac })
	}
	if c.IsSet("acme-ca-roots") {
		roots := ""
		if f := c.String("acme-ca-roots"); f != "" {
			var err error
			if roots, _, err = readPEMCerts("acme-ca-roots", f); err != nil {
				return nil, err
			}
		}
		edit(func(e *ccv1.EdgeSettings) { e.AcmeCaRootsPem = roots })
	}
	if c.IsSet("acme-challenges") {
		http01, alpn01, err := parseChallenges(c.String("acme-challenges"))
		if err != nil {
			return nil, err
		}
		edit(func(e *ccv1.EdgeSettings) { e.AcmeDisableHttp01, e.AcmeDisableTlsAlpn01 = !http01, !alpn01 })
	}
	if c.IsSet("edge-http3") {
		on, err := parseOnOff(c.String("edge-http3"))
		if err != nil {
			return nil, fmt.Errorf("--edge-http3 %q: use true or false", c.String("edge-http3"))
		}
		edit(func(e *ccv1.EdgeSettings) { e.Http3 = on })
	}
	if c.IsSet("edge-default-cert") {
		name := strings.TrimSpace(c.String("edge-default-cert"))
		if strings.ContainsAny(name, " \t/") || strings.EqualFold(name, "auto") {
			return nil, fmt.Errorf("--edge-default-cert %q: the name of a certificate (see ccctl cert ls; \"\": none)", c.String("edge-default-cert"))
		}
		edit(func(e *ccv1.EdgeSettings) { e.DefaultCert = name })
	}
	return func(e *ccv1.EdgeSettings) {
		for _, fn := range edits {
			fn(e)
		}
	}, nil
}

// parseACMEDirectory reads --acme-directory: an https URL, letsencrypt
// ("", the default) or letsencrypt-staging.
func parseACMEDirectory(s string) (string, error) {
	v := strings.TrimSpace(s)
	switch strings.ToLower(v) {
	case "", "letsencrypt", "default", letsEncryptDirectory:
		return "", nil
	case "letsencrypt-staging":
		return letsEncryptStagingDirectory, nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("--acme-directory %q: the directory URL of the ACME CA, e.g. https://acme.example.com/directory (or letsencrypt, letsencrypt-staging)", s)
	}
	if u.Scheme == "http" {
		return "", fmt.Errorf("--acme-directory %q: ACME directories are served over HTTPS: use https://%s%s (a private CA: add --acme-ca-roots FILE)", s, u.Host, u.RequestURI())
	}
	return v, nil
}

// readEABHMAC reads --acme-eab-hmac or --acme-eab-hmac-file, checking that
// the key is base64 as CAs give it.
func readEABHMAC(c *cli.Context) (string, error) {
	if c.IsSet("acme-eab-hmac") && c.IsSet("acme-eab-hmac-file") {
		return "", errors.New("give --acme-eab-hmac or --acme-eab-hmac-file, not both")
	}
	flag, key := "--acme-eab-hmac", c.String("acme-eab-hmac")
	if c.IsSet("acme-eab-hmac-file") {
		file := c.String("acme-eab-hmac-file")
		flag = "--acme-eab-hmac-file " + file
		var data []byte
		var err error
		if file == "-" {
			data, err = io.ReadAll(io.LimitReader(c.App.Reader, 1<<16))
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %v", flag, unwrapPath(err))
		}
		key = string(data)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return "", fmt.Errorf("%s: the HMAC key is empty (the stored one is kept without the flag)", flag)
	}
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if _, err := enc.DecodeString(key); err == nil {
			return key, nil
		}
	}
	return "", fmt.Errorf("%s: not base64: give the HMAC key as the CA shows it (base64url)", flag)
}

// parseChallenges reads --acme-challenges: the challenge types that are on.
func parseChallenges(s string) (http01, alpn01 bool, err error) {
	for _, p := range strings.Split(s, ",") {
		switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(p)), "_", "-") {
		case "":
		case "http-01", "http01", "http":
			http01 = true
		case "tls-alpn-01", "tls-alpn01", "tls-alpn", "tlsalpn01":
			alpn01 = true
		default:
			return false, false, fmt.Errorf("--acme-challenges %q: use http-01, tls-alpn-01 or http-01,tls-alpn-01", s)
		}
	}
	if !http01 && !alpn01 {
		return false, false, fmt.Errorf("--acme-challenges %q: name at least one: http-01 (port 80 reaches the edge) or tls-alpn-01 (port 443 does)", s)
	}
	return http01, alpn01, nil
}

// parseOnOff reads a boolean: true/false, on/off, yes/no, 1/0.
func parseOnOff(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "yes":
		return true, nil
	case "off", "no":
		return false, nil
	}
	return strconv.ParseBool(strings.TrimSpace(s))
}

// schedulingStrategy prints a strategy; unset is the default, spread.
func schedulingStrategy(s ccv1.SchedulingStrategy) string {
	if s == ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED {
		s = ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD
	}
	return enumWord(s.String(), "SCHEDULING_STRATEGY_")
}
