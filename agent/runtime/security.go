package runtime

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containercodes/cc/internal/secprofile"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Security profiles of plain containers (spec.security; see
// internal/secprofile for the effective profile). A job sandbox ignores
// the profile: it always runs with no capabilities, no new privileges and
// containerd's default seccomp profile.

// securityOpts are a plain container's capability options, which come
// before the seccomp profile (containerd's default is built from the
// capabilities).
func securityOpts(p *ccv1.SecurityProfile) []oci.SpecOpts {
	if p.GetPrivileged() {
		return []oci.SpecOpts{oci.WithPrivileged, oci.WithHostDevices, oci.WithAllDevicesAllowed}
	}
	if len(p.GetCapAdd()) == 0 && len(p.GetCapDrop()) == 0 {
		return nil // containerd's default set
	}
	return []oci.SpecOpts{withCaps(secprofile.Caps(p))}
}

// withCaps sets the bounding, effective and permitted sets to caps, as
// containerd's default spec sets them, and empties the inheritable and
// ambient ones.
func withCaps(caps []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding:    slices.Clone(caps),
			Effective:   slices.Clone(caps),
			Permitted:   slices.Clone(caps),
			Inheritable: []string{},
			Ambient:     []string{},
		}
		return nil
	}
}

// filterOpts are the no-new-privileges and seccomp options of a
// container, after its capabilities: a job sandbox's are fixed; a plain
// container's follow its profile.
func filterOpts(t Task) ([]oci.SpecOpts, error) {
	p := t.Spec.GetSecurity()
	if t.Spec.GetSandbox() != nil {
		p = nil
	}
	var opts []oci.SpecOpts
	if !p.GetAllowNewPrivileges() && !p.GetPrivileged() {
		opts = append(opts, oci.WithNoNewPrivileges)
	} else {
		opts = append(opts, oci.WithNewPrivileges) // containerd's default spec sets it
	}
	switch {
	case p.GetPrivileged() || p.GetSeccomp() == ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED:
		opts = append(opts, oci.WithSeccompUnconfined)
	case p.GetSeccomp() == ccv1.SeccompMode_SECCOMP_MODE_CUSTOM:
		prof, err := secprofile.ParseSeccomp(p.GetSeccompProfile())
		if err != nil {
			return nil, fmt.Errorf("runtime: start %s: %w", t.ID, err)
		}
		opts = append(opts, withSeccomp(prof))
	default:
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	return opts, nil
}

// withSeccomp sets the container's seccomp profile.
func withSeccomp(p *specs.LinuxSeccomp) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.Seccomp = p
		return nil
	}
}
