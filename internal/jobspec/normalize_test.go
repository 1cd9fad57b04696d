package jobspec_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/jobspec"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestNormalizeFillsDefaults(t *testing.T) {
	in := &ccv1.JobSpec{Image: "busybox", Command: []string{"echo", "hi"}, WebhookUrl: "https://example.com/hook", Labels: map[string]string{"team": "a"}}
	orig := proto.Clone(in)
	got, err := jobspec.Normalize(in, jobspec.Caps{})
	if err != nil {
		t.Fatal(err)
	}
	want := &ccv1.JobSpec{
		Image: "docker.io/library/busybox:latest", Command: []string{"echo", "hi"}, WebhookUrl: "https://example.com/hook", Labels: map[string]string{"team": "a"},
		Queue:            "default",
		Resources:        &ccv1.ContainerResources{MemoryBytes: 512 << 20, CpuMillis: 1000, Pids: 512, MemoryReservationBytes: 512 << 20, CpuReservationMillis: 1000},
		Timeout:          durationpb.New(time.Hour),
		MaxAttempts:      1,
		OutputLimitBytes: 1 << 30,
		TmpLimitBytes:    64 << 20,
		MaxOutputFiles:   10000,
		KillGrace:        durationpb.New(10 * time.Second),
		OutputTtl:        durationpb.New(7 * 24 * time.Hour),
	}
	if !proto.Equal(got, want) {
		t.Fatalf("normalized\n%v\nwant\n%v", got, want)
	}
	if !proto.Equal(in, orig) {
		t.Fatalf("the input changed: %v", in)
	}
}

func TestNormalizeKeepsGivenValues(t *testing.T) {
	tests := []struct {
		name  string
		in    *ccv1.JobSpec
		check func(*ccv1.JobSpec) bool
	}{
		{"partial resources", &ccv1.JobSpec{Image: "busybox:1.36", Resources: &ccv1.ContainerResources{MemoryBytes: 64 << 20}},
			func(s *ccv1.JobSpec) bool {
				r := s.Resources
				return r.MemoryBytes == 64<<20 && r.CpuMillis == 1000 && r.Pids == 512
			}},
		{"queue", &ccv1.JobSpec{Image: "busybox", Queue: "batch-1"}, func(s *ccv1.JobSpec) bool { return s.Queue == "batch-1" }},
		{"timeout", &ccv1.JobSpec{Image: "busybox", Timeout: durationpb.New(time.Minute)}, func(s *ccv1.JobSpec) bool { return s.Timeout.AsDuration() == time.Minute }},
		{"zero duration takes the default", &ccv1.JobSpec{Image: "busybox", KillGrace: durationpb.New(0)}, func(s *ccv1.JobSpec) bool { return s.KillGrace.AsDuration() == jobspec.DefaultKillGrace }},
		{"bare input digest", &ccv1.JobSpec{Image: "busybox", InputDigest: strings.Repeat("ab", 32)}, func(s *ccv1.JobSpec) bool { return s.InputDigest == "sha256:"+strings.Repeat("ab", 32) }},
		{"user uid:gid", &ccv1.JobSpec{Image: "busybox", User: "1000:1000"}, func(s *ccv1.JobSpec) bool { return s.User == "1000:1000" }},
		{"limits at the most", &ccv1.JobSpec{Image: "busybox", MaxAttempts: jobspec.MaxAttemptsLimit, MaxOutputFiles: jobspec.MaxOutputFiles, OutputLimitBytes: jobspec.MaxOutputLimitBytes},
			func(s *ccv1.JobSpec) bool {
				return s.MaxAttempts == jobspec.MaxAttemptsLimit && s.MaxOutputFiles == jobspec.MaxOutputFiles && s.OutputLimitBytes == jobspec.MaxOutputLimitBytes
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jobspec.Normalize(tt.in, jobspec.Caps{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Fatalf("normalized %v", got)
			}
		})
	}
}

func TestNormalizeRefuses(t *testing.T) {
	long := strings.Repeat("k", 257)
	tests := []struct {
		name string
		spec *ccv1.JobSpec
		text string
	}{
		{"no spec", nil, "spec.image: required"},
		{"no image", &ccv1.JobSpec{Command: []string{"x"}}, "spec.image: required"},
		{"bad image", &ccv1.JobSpec{Image: "Not/Valid:Name:x"}, "image"},
		{"env", &ccv1.JobSpec{Image: "busybox", Env: []string{"NOEQUALS"}}, `env "NOEQUALS": use KEY=VALUE`},
		{"queue", &ccv1.JobSpec{Image: "busybox", Queue: "Bad Queue"}, "queue name"},
		{"memory", &ccv1.JobSpec{Image: "busybox", Resources: &ccv1.ContainerResources{MemoryBytes: -1}}, "memory_bytes"},
		{"memory small", &ccv1.JobSpec{Image: "busybox", Resources: &ccv1.ContainerResources{MemoryBytes: 1 << 20}}, "resources.memory_bytes: at least 4 MiB"},
		{"cpu", &ccv1.JobSpec{Image: "busybox", Resources: &ccv1.ContainerResources{CpuMillis: -5}}, "cpu_millis"},
		{"pids", &ccv1.JobSpec{Image: "busybox", Resources: &ccv1.ContainerResources{Pids: -1}}, "pids"},
		{"reservations", &ccv1.JobSpec{Image: "busybox", Resources: &ccv1.ContainerResources{CpuReservationMillis: -1}}, "reservations must not be negative"},
		{"timeout negative", &ccv1.JobSpec{Image: "busybox", Timeout: durationpb.New(-time.Second)}, "timeout: must be positive (unset: the default, 1h0m0s)"},
		{"timeout too long", &ccv1.JobSpec{Image: "busybox", Timeout: durationpb.New(8 * 24 * time.Hour)}, "timeout: 192h0m0s is longer than the most allowed, 168h0m0s"},
		{"kill grace too long", &ccv1.JobSpec{Image: "busybox", KillGrace: durationpb.New(2 * time.Hour)}, "kill_grace: 2h0m0s is longer"},
		{"output ttl too long", &ccv1.JobSpec{Image: "busybox", OutputTtl: durationpb.New(400 * 24 * time.Hour)}, "output_ttl: 9600h0m0s is longer"},
		{"attempts", &ccv1.JobSpec{Image: "busybox", MaxAttempts: 11}, "max_attempts: at most 10"},
		{"output limit", &ccv1.JobSpec{Image: "busybox", OutputLimitBytes: 65 << 30}, "output_limit_bytes: between 1 and 68719476736 (64 GiB)"},
		{"output limit negative", &ccv1.JobSpec{Image: "busybox", OutputLimitBytes: -1}, "output_limit_bytes"},
		{"tmp limit", &ccv1.JobSpec{Image: "busybox", TmpLimitBytes: -1}, "tmp_limit_bytes: between 1 and 68719476736 (64 GiB) (0: the default, 64 MiB)"},
		{"output files", &ccv1.JobSpec{Image: "busybox", MaxOutputFiles: 1_000_001}, "max_output_files: at most 1000000"},
		{"webhook scheme", &ccv1.JobSpec{Image: "busybox", WebhookUrl: "ftp://x/y"}, "webhook_url"},
		{"webhook relative", &ccv1.JobSpec{Image: "busybox", WebhookUrl: "/hook"}, "webhook_url"},
		{"secret without webhook", &ccv1.JobSpec{Image: "busybox", WebhookSecret: "s"}, "webhook_secret"},
		{"secret too long", &ccv1.JobSpec{Image: "busybox", WebhookUrl: "https://x.test/", WebhookSecret: long}, "webhook_secret: at most 256 characters"},
		{"label key", &ccv1.JobSpec{Image: "busybox", Labels: map[string]string{"": "v"}}, "label"},
		{"idempotency key", &ccv1.JobSpec{Image: "busybox", IdempotencyKey: long}, "idempotency_key: at most 256"},
		{"input digest form", &ccv1.JobSpec{Image: "busybox", InputDigest: "abc"}, "input_digest"},
		{"input digest upper case", &ccv1.JobSpec{Image: "busybox", InputDigest: "sha256:" + strings.Repeat("AB", 32)}, "input_digest"},
		{"user", &ccv1.JobSpec{Image: "busybox", User: "root"}, "user"},
		{"workdir", &ccv1.JobSpec{Image: "busybox", Workdir: "rel"}, "workdir"},
		{"several", &ccv1.JobSpec{Image: "busybox", MaxAttempts: 99, Env: []string{"=x"}}, "; "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jobspec.Normalize(tt.spec, jobspec.Caps{})
			var inv *jobspec.InvalidError
			if !errors.As(err, &inv) || got != nil {
				t.Fatalf("Normalize = %v, %v; want an *InvalidError", got, err)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error %q, want it to hold %q", err, tt.text)
			}
			if err.Error() != strings.Join(inv.Problems, "; ") {
				t.Fatalf("message %q is not the problems joined: %q", err, inv.Problems)
			}
		})
	}
}

func TestValidQueueName(t *testing.T) {
	for name, ok := range map[string]bool{
		"default":               true,
		"a.b_c-1":               true,
		strings.Repeat("q", 63): true,
		"":                      false,
		strings.Repeat("q", 64): false,
		"Upper":                 false,
		"with space":            false,
	} {
		if err := jobspec.ValidQueueName(name); (err == nil) != ok {
			t.Errorf("ValidQueueName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

func TestReadersTakeDefaults(t *testing.T) {
	var zero *ccv1.JobSpec
	if jobspec.Timeout(zero) != jobspec.DefaultTimeout || jobspec.KillGrace(zero) != jobspec.DefaultKillGrace ||
		jobspec.OutputTTL(zero) != jobspec.DefaultOutputTTL || jobspec.MaxAttempts(zero) != int(jobspec.DefaultMaxAttempts) {
		t.Fatal("a nil spec does not read the defaults")
	}
	s := &ccv1.JobSpec{Timeout: durationpb.New(time.Minute), KillGrace: durationpb.New(1500 * time.Microsecond), MaxAttempts: 3}
	if jobspec.Timeout(s) != time.Minute || jobspec.KillGrace(s) != 1500*time.Microsecond || jobspec.MaxAttempts(s) != 3 {
		t.Fatalf("spec values not read: %v", s)
	}
	var sb *ccv1.JobSandbox
	if jobspec.SandboxTimeout(sb) != jobspec.DefaultTimeout || jobspec.SandboxKillGrace(sb) != jobspec.DefaultKillGrace {
		t.Fatal("a nil sandbox does not read the defaults")
	}
	// The attempt's kill grace is in whole milliseconds.
	a := jobspec.AttemptSpec(&ccv1.Job{Id: "j", Spec: s})
	if a.StopGracePeriod.AsDuration() != time.Millisecond || a.Sandbox.KillGrace.AsDuration() != time.Millisecond || a.Sandbox.JobId != "j" {
		t.Fatalf("attempt spec %v", a)
	}
}
