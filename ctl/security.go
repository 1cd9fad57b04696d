package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/secprofile"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// securityFlags are the disk limit and security profile flags of run and
// service create (update: the same, each replacing what it sets).
func securityFlags(update bool) []cli.Flag {
	disk := "cap the container's writable layer at `SIZE` (e.g. 1g, at least 16m): writes past it fail with ENOSPC"
	privileged := "give every capability and device, no seccomp filter (admin tokens, when the cluster allows it: ccctl cluster settings --allow-privileged=true)"
	if update {
		disk += "; 0: no cap"
		privileged += " (--privileged=false: not)"
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "disk", Usage: disk},
		&cli.StringSliceFlag{Name: "cap-add", Usage: "add the capability `CAP` to the default set (e.g. NET_ADMIN, or ALL); repeatable"},
		&cli.StringSliceFlag{Name: "cap-drop", Usage: "drop the capability `CAP` from the default set (e.g. NET_RAW, or ALL); repeatable"},
		&cli.StringSliceFlag{Name: "security-opt", Usage: "`OPT`: seccomp=PROFILE.json (OCI or Docker format), seccomp=unconfined (as --privileged), seccomp=default, no-new-privileges=false|true; repeatable"},
		&cli.StringFlag{Name: "userns", Usage: "user namespace `MODE`: host (uid 0 is root on the node) or private (ids remapped to an unprivileged range) (default: host)"},
		&cli.BoolFlag{Name: "privileged", Usage: privileged},
	}
}

// applySecurityFlags changes t as the disk and security flags given say.
func applySecurityFlags(c *cli.Context, t *ccv1.ContainerSpec) error {
	if c.IsSet("disk") {
		n, err := parseSize("disk", c.String("disk"))
		if err != nil {
			return err
		}
		if n > 0 && n < secprofileMinDisk {
			return fmt.Errorf("--disk %q: at least 16m (the writable layer's filesystem needs room for its metadata)", c.String("disk"))
		}
		res := &ccv1.ContainerResources{}
		if t.Resources != nil {
			res = proto.Clone(t.Resources).(*ccv1.ContainerResources)
		}
		res.DiskBytes = n
		if proto.Equal(res, &ccv1.ContainerResources{}) {
			res = nil
		}
		t.Resources = res
	}
	p := &ccv1.SecurityProfile{}
	if t.Security != nil {
		p = proto.Clone(t.Security).(*ccv1.SecurityProfile)
	}
	// Drops, then adds, each taken from the other list (service update
	// changes the stored lists).
	for _, f := range []struct {
		flag      string
		to, other *[]string
	}{{"cap-drop", &p.CapDrop, &p.CapAdd}, {"cap-add", &p.CapAdd, &p.CapDrop}} {
		if !c.IsSet(f.flag) {
			continue
		}
		for _, v := range c.StringSlice(f.flag) {
			for _, name := range strings.Split(v, ",") {
				if strings.TrimSpace(name) == "" {
					continue
				}
				n, err := secprofile.NormalizeCap(name)
				if err != nil {
					return fmt.Errorf("--%s: %w", f.flag, err)
				}
				*f.other = slices.DeleteFunc(*f.other, func(o string) bool { return o == n })
				if !slices.Contains(*f.to, n) {
					*f.to = append(*f.to, n)
				}
			}
		}
	}
	for _, o := range c.StringSlice("security-opt") {
		if err := applySecurityOpt(p, o, os.ReadFile); err != nil {
			return err
		}
	}
	if c.IsSet("userns") {
		switch strings.ToLower(strings.TrimSpace(c.String("userns"))) {
		case "host", "":
			p.Userns = ccv1.UsernsMode_USERNS_MODE_UNSPECIFIED
		case "private":
			p.Userns = ccv1.UsernsMode_USERNS_MODE_PRIVATE
		default:
			return fmt.Errorf("--userns %q: use host or private", c.String("userns"))
		}
	}
	if c.IsSet("privileged") {
		p.Privileged = c.Bool("privileged")
	}
	if proto.Equal(p, &ccv1.SecurityProfile{}) {
		p = nil
	}
	t.Security = p
	if probs := secprofile.Check(p); len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// secprofileMinDisk is the smallest --disk.
const secprofileMinDisk = 16 << 20

// applySecurityOpt applies one --security-opt: seccomp=FILE|unconfined|
// default, no-new-privileges[=BOOL] (docker's ':' works too). readFile
// reads a profile.
func applySecurityOpt(p *ccv1.SecurityProfile, opt string, readFile func(string) ([]byte, error)) error {
	key, val, hasVal := strings.Cut(opt, "=")
	if !hasVal {
		key, val, hasVal = strings.Cut(opt, ":")
	}
	switch strings.TrimSpace(key) {
	case "seccomp":
		switch val {
		case "":
			return errors.New("--security-opt seccomp: give seccomp=PROFILE.json, seccomp=unconfined or seccomp=default")
		case "unconfined":
			p.Seccomp, p.SeccompProfile = ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED, nil
		case "default", "builtin":
			p.Seccomp, p.SeccompProfile = ccv1.SeccompMode_SECCOMP_MODE_UNSPECIFIED, nil
		default:
			b, err := readFile(val)
			if err != nil {
				return fmt.Errorf("--security-opt seccomp=%s: %w", val, err)
			}
			if _, err := secprofile.ParseSeccomp(b); err != nil {
				return fmt.Errorf("--security-opt seccomp=%s: %w", val, err)
			}
			p.Seccomp, p.SeccompProfile = ccv1.SeccompMode_SECCOMP_MODE_CUSTOM, b
		}
	case "no-new-privileges":
		on := true
		if hasVal {
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("--security-opt no-new-privileges=%s: use true or false", val)
			}
			on = b
		}
		p.AllowNewPrivileges = !on
	default:
		return fmt.Errorf("--security-opt %q: use seccomp=PROFILE.json|unconfined|default or no-new-privileges=true|false", opt)
	}
	return nil
}

// effectiveSecurity is the profile a container runs with, as inspect
// shows it: a job attempt's is fixed (no capabilities, containerd's
// seccomp profile, no new privileges, its own user namespace unless the
// agent turns them off).
func effectiveSecurity(s *ccv1.ContainerSpec) secprofile.Effective {
	if s.GetSandbox() != nil {
		return secprofile.Effective{Capabilities: []string{}, Seccomp: "default", NoNewPrivileges: true, Userns: "private"}
	}
	return secprofile.EffectiveOf(s.GetSecurity())
}

// printInspect prints a container as JSON with its effective security
// profile added as "effective_security".
func printInspect(c *cli.Context, ct *ccv1.Container) error {
	data, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, EmitUnpopulated: true}.Marshal(ct)
	if err != nil {
		return err
	}
	eff, err := json.MarshalIndent(effectiveSecurity(ct.GetSpec()), "  ", "  ")
	if err != nil {
		return err
	}
	s := strings.TrimRight(string(data), "\n ")
	s = strings.TrimSuffix(s, "}")
	s = strings.TrimRight(s, "\n ") + ",\n  \"effective_security\": " + string(eff) + "\n}"
	_, err = fmt.Fprintln(c.App.Writer, s)
	return err
}
