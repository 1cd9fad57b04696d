package jobspec

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/imagearchive"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Limits of a submitted job spec.
const (
	MaxTimeout = 7 * 24 * time.Hour
	// MaxAttemptsLimit is the most a spec's max_attempts may be (MaxAttempts
	// reads a spec's own).
	MaxAttemptsLimit     = 10
	MaxOutputLimitBytes  = 64 << 30
	MaxTmpLimitBytes     = 64 << 30
	MaxOutputFiles       = 1_000_000
	MaxKillGrace         = time.Hour
	MaxOutputTTL         = 366 * 24 * time.Hour
	MaxIdempotencyKeyLen = 256
)

// InvalidError is a submitted spec's refusal: every problem found, each
// saying what to do. Its message joins them with "; ".
type InvalidError struct {
	Problems []string
}

func (e *InvalidError) Error() string { return strings.Join(e.Problems, "; ") }

// Normalize checks a submitted job spec against the bounds of every spec
// and the cluster's caps, says all that is wrong and what to do, and
// returns the spec to store: the image reference normalized, the input
// digest as "sha256:<hex>", every default filled (at most the cap), the
// reservations equal to the limits (a job reserves what it may use). A
// refusal is an *InvalidError; in is not changed.
func Normalize(in *ccv1.JobSpec, caps Caps) (*ccv1.JobSpec, error) {
	if in == nil || strings.TrimSpace(in.Image) == "" {
		return nil, &InvalidError{Problems: []string{"spec.image: required, the image to run (loaded with `ccctl image load`, or a registry reference)"}}
	}
	s := proto.Clone(in).(*ccv1.JobSpec)
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	if ref, err := imagearchive.Normalize(s.Image); err != nil {
		bad("image %q: %v", s.Image, err)
	} else {
		s.Image = ref
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			bad("env %q: use KEY=VALUE", short(e))
		}
	}
	probs = append(probs, CheckCommand(s.Command, s.Env)...)
	if s.Priority < MinPriority || s.Priority > MaxPriority {
		bad("priority %d: between %d and %d (higher runs first)", s.Priority, MinPriority, MaxPriority)
	}
	if s.Queue == "" {
		s.Queue = DefaultQueue
	} else if err := ValidQueueName(s.Queue); err != nil {
		bad("%v", err)
	}
	if s.Resources == nil {
		s.Resources = &ccv1.ContainerResources{}
	}
	r := s.Resources
	switch {
	case r.MemoryBytes < 0:
		bad("resources.memory_bytes: must not be negative (0: the default, 512 MiB)")
	case r.MemoryBytes > 0 && r.MemoryBytes < MinMemoryBytes:
		bad("resources.memory_bytes: at least 4 MiB")
	case r.MemoryBytes == 0:
		r.MemoryBytes = capped(DefaultMemoryBytes, caps.memory(), MinMemoryBytes)
	}
	switch {
	case r.CpuMillis < 0 || r.CpuMillis > MaxCPUMillis:
		bad("resources.cpu_millis: between 1 (0.001 CPU) and %d (0: the default, one CPU)", MaxCPUMillis)
	case r.CpuMillis == 0:
		r.CpuMillis = capped(DefaultCPUMillis, caps.cpu(), 1)
	}
	switch {
	case r.Pids < 0:
		bad("resources.pids: must not be negative (0: the default, 512)")
	case r.Pids == 0:
		r.Pids = capped(DefaultPids, caps.pids(), 1)
	}
	if r.MemoryReservationBytes < 0 || r.CpuReservationMillis < 0 {
		bad("resources: reservations must not be negative")
	}
	if r.DiskBytes != 0 {
		bad("resources.disk_bytes: a job's root is read-only, so it has no disk limit; size its /output with output_limit_bytes (--output-limit) and its /tmp with tmp_limit_bytes (--tmp-limit)")
	}
	probs = append(probs, caps.Check(r)...)
	// A job reserves what it may use: the scheduler counts its limits, so
	// that jobs never overcommit a node.
	r.MemoryReservationBytes, r.CpuReservationMillis = r.MemoryBytes, r.CpuMillis
	duration := func(name string, d **durationpb.Duration, def, max time.Duration) {
		switch {
		case *d == nil || (*d).AsDuration() == 0 && (*d).IsValid():
			*d = durationpb.New(def)
		case !(*d).IsValid() || (*d).AsDuration() < 0:
			bad("%s: must be positive (unset: the default, %s)", name, def)
		case (*d).AsDuration() > max:
			bad("%s: %s is longer than the most allowed, %s", name, (*d).AsDuration(), max)
		}
	}
	duration("timeout", &s.Timeout, DefaultTimeout, MaxTimeout)
	duration("kill_grace", &s.KillGrace, DefaultKillGrace, MaxKillGrace)
	duration("output_ttl", &s.OutputTtl, DefaultOutputTTL, MaxOutputTTL)
	switch {
	case s.MaxAttempts > MaxAttemptsLimit:
		bad("max_attempts: at most %d", MaxAttemptsLimit)
	case s.MaxAttempts == 0:
		s.MaxAttempts = DefaultMaxAttempts
	}
	switch {
	case s.OutputLimitBytes < 0 || s.OutputLimitBytes > MaxOutputLimitBytes:
		bad("output_limit_bytes: between 1 and %d (64 GiB) (0: the default, 1 GiB)", int64(MaxOutputLimitBytes))
	case s.OutputLimitBytes == 0:
		s.OutputLimitBytes = DefaultOutputLimitBytes
	}
	switch {
	case s.TmpLimitBytes < 0 || s.TmpLimitBytes > MaxTmpLimitBytes:
		bad("tmp_limit_bytes: between 1 and %d (64 GiB) (0: the default, 64 MiB)", int64(MaxTmpLimitBytes))
	case s.TmpLimitBytes == 0:
		s.TmpLimitBytes = DefaultTmpLimitBytes
	}
	switch {
	case s.MaxOutputFiles > MaxOutputFiles:
		bad("max_output_files: at most %d", MaxOutputFiles)
	case s.MaxOutputFiles == 0:
		s.MaxOutputFiles = DefaultMaxOutputFiles
	}
	if s.WebhookUrl != "" {
		u, err := url.Parse(s.WebhookUrl)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("webhook_url %q: give an absolute http:// or https:// URL", s.WebhookUrl)
		}
	} else if s.WebhookSecret != "" {
		bad("webhook_secret: set only with a webhook_url")
	}
	if len(s.WebhookSecret) > 256 {
		bad("webhook_secret: at most 256 characters")
	}
	if len(s.Labels) > MaxLabels {
		bad("labels: %d, at most %d", len(s.Labels), MaxLabels)
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || len(k) > MaxLabelKeyLen || strings.ContainsAny(k, "=,") || len(s.Labels[k]) > MaxLabelValueLen {
			bad("label %q=%q: a key is 1-%d characters without '=' or ','; a value at most %d", short(k), short(s.Labels[k]), MaxLabelKeyLen, MaxLabelValueLen)
		}
	}
	if len(s.IdempotencyKey) > MaxIdempotencyKeyLen {
		bad("idempotency_key: at most %d characters", MaxIdempotencyKeyLen)
	}
	if d := s.InputDigest; d != "" {
		h := strings.TrimPrefix(d, "sha256:")
		if !isHex64(h) {
			bad("input_digest %q: want sha256:<64 lowercase hex digits>, as UploadInput returned it", d)
		} else {
			s.InputDigest = "sha256:" + h
		}
	}
	if s.User != "" && !validUser(s.User) {
		bad("user %q: give a numeric uid or uid:gid (e.g. 1000 or 1000:1000)", s.User)
	}
	if s.Workdir != "" && (!strings.HasPrefix(s.Workdir, "/") || len(s.Workdir) > MaxWorkdirLen) {
		bad("workdir %q: an absolute path of at most %d characters", short(s.Workdir), MaxWorkdirLen)
	}
	if len(probs) > 0 {
		return nil, &InvalidError{Problems: probs}
	}
	return s, nil
}

// ValidQueueName checks a queue name: 1 to 63 of a-z, 0-9, '-', '_', '.'.
func ValidQueueName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("queue name %q must be 1 to 63 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("queue name %q may only hold a-z, 0-9, '-', '_' and '.'", name)
		}
	}
	return nil
}

func validUser(u string) bool {
	uid, gid, hasGID := strings.Cut(u, ":")
	ok := func(n string) bool {
		v, err := strconv.ParseUint(n, 10, 32)
		return err == nil && v < 1<<32-1
	}
	return ok(uid) && (!hasGID || ok(gid))
}

// isHex64 says whether h is 64 lowercase hex digits (a sha256).
func isHex64(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
