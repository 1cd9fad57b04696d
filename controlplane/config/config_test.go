package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultValidates(t *testing.T) {
	c := Default()
	c.DataDir = "/var/lib/cc"
	if err := c.Validate(); err != nil {
		t.Fatalf("Default with DataDir set: Validate() = %v, want nil", err)
	}
}

func TestDefaultWithoutDataDir(t *testing.T) {
	err := Default().Validate()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate() = %v (%T), want Problems", err, err)
	}
	want := Problems{{Key: "data_dir", Msg: "required (set --data-dir or data_dir in the config file)"}}
	if !reflect.DeepEqual(ps, want) {
		t.Fatalf("Validate() = %#v, want %#v", ps, want)
	}
}

func TestValidateReportsAll(t *testing.T) {
	c := Default()
	c.DataDir = "/d"
	c.Log.Level = "loud"
	c.Log.Format = "xml"
	c.TLSSANs = []string{"ok.example", "", "a b"}
	c.Raft.HeartbeatTimeout = Duration{10 * time.Millisecond}
	c.Raft.CommitTimeout = Duration{0}
	c.Raft.SnapshotThreshold = 0
	err := c.Validate()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate() = %v, want Problems", err)
	}
	var got []string
	for _, p := range ps {
		if p.Line != 0 {
			t.Errorf("Validate problem %v has Line %d, want 0", p, p.Line)
		}
		got = append(got, p.Key)
	}
	want := []string{"tls_sans", "tls_sans", "log.level", "log.format", "raft.heartbeat_timeout",
		"raft.commit_timeout", "raft.snapshot_threshold"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problem keys = %v, want %v\n%v", got, want, err)
	}
}

func TestValidateAddrs(t *testing.T) {
	tests := []struct {
		name      string
		set       func(*Config)
		wantKey   string // "" means valid
		wantInMsg string
	}{
		{"api port zero ok", func(c *Config) { c.APIAddr = "127.0.0.1:0" }, "", ""},
		{"api empty host ok", func(c *Config) { c.APIAddr = ":7443" }, "", ""},
		{"api ipv6 ok", func(c *Config) { c.APIAddr = "[::1]:7443" }, "", ""},
		{"api no port", func(c *Config) { c.APIAddr = "nope" }, "api_addr", "no port"},
		{"api port range", func(c *Config) { c.APIAddr = "1.2.3.4:99999" }, "api_addr", "0-65535"},
		{"raft port not number", func(c *Config) { c.RaftAddr = "h:http" }, "raft_addr", "not a number"},
		{"raft empty", func(c *Config) { c.RaftAddr = "" }, "raft_addr", "must not be empty"},
		{"advertise ok", func(c *Config) { c.RaftAdvertise = "10.0.0.5:7444" }, "", ""},
		{"advertise unspecified v4", func(c *Config) { c.RaftAdvertise = "0.0.0.0:7444" }, "raft_advertise", "own IP"},
		{"advertise unspecified v6", func(c *Config) { c.RaftAdvertise = "[::]:7444" }, "raft_advertise", "own IP"},
		{"advertise hostname", func(c *Config) { c.RaftAdvertise = "cp1.example:7444" }, "raft_advertise", "not an IP"},
		{"advertise port 0", func(c *Config) { c.RaftAdvertise = "10.0.0.5:0" }, "raft_advertise", "port 0"},
		{"lease above heartbeat", func(c *Config) { c.Raft.LeaderLeaseTimeout = Duration{2 * time.Second} }, "raft.leader_lease_timeout", "at most heartbeat_timeout"},
		{"snapshot interval short", func(c *Config) { c.Raft.SnapshotInterval = Duration{time.Millisecond} }, "raft.snapshot_interval", "at least 1s"},
		{"empty name", func(c *Config) { c.Name = " " }, "name", "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.DataDir = "/d"
			tt.set(&c)
			err := c.Validate()
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) || len(ps) != 1 {
				t.Fatalf("Validate() = %v, want one problem", err)
			}
			if ps[0].Key != tt.wantKey || !strings.Contains(ps[0].Msg, tt.wantInMsg) {
				t.Fatalf("problem = %v, want key %q and message containing %q", ps[0], tt.wantKey, tt.wantInMsg)
			}
		})
	}
}

const goodFile = `# cc-controlplane config
data_dir = "/var/lib/cc"
bootstrap = true
name = "cp-1"
api_addr = "127.0.0.1:0"
raft_addr = "10.0.0.5:7444"
raft_advertise = "10.0.0.5:7444"
tls_sans = ["cp.example.com", "10.0.0.5"]

[log]
level = "debug"   # chatty
format = "json"

[raft]
heartbeat_timeout = "200ms"
election_timeout = "2s"
leader_lease_timeout = "100ms"
snapshot_interval = "5m"
snapshot_threshold = 100
trailing_logs = 0
`

func TestParseGood(t *testing.T) {
	c, err := Parse("good.toml", []byte(goodFile))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	want := Default()
	want.DataDir = "/var/lib/cc"
	want.Bootstrap = true
	want.Name = "cp-1"
	want.APIAddr = "127.0.0.1:0"
	want.RaftAddr = "10.0.0.5:7444"
	want.RaftAdvertise = "10.0.0.5:7444"
	want.TLSSANs = []string{"cp.example.com", "10.0.0.5"}
	want.Log = LogConfig{Level: "debug", Format: "json"}
	want.Raft.HeartbeatTimeout = Duration{200 * time.Millisecond}
	want.Raft.ElectionTimeout = Duration{2 * time.Second}
	want.Raft.LeaderLeaseTimeout = Duration{100 * time.Millisecond}
	want.Raft.SnapshotInterval = Duration{5 * time.Minute}
	want.Raft.SnapshotThreshold = 100
	want.Raft.TrailingLogs = 0
	// commit_timeout is not in the file: it keeps its default.
	if c.Raft.CommitTimeout != Default().Raft.CommitTimeout {
		t.Errorf("commit_timeout = %v, want the default %v", c.Raft.CommitTimeout, Default().Raft.CommitTimeout)
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse() =\n%+v\nwant\n%+v", c, want)
	}
}

func TestLoadGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cc.toml")
	if err := os.WriteFile(path, []byte(goodFile), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if c.Raft.ElectionTimeout.Duration != 2*time.Second || c.Log.Format != "json" || c.DataDir != "/var/lib/cc" {
		t.Fatalf("Load() = %+v, want the values of the file", c)
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("Load() = %v (%T), want *FileError", err, err)
	}
	if fe.Path != path || !strings.Contains(err.Error(), path) || len(fe.Problems) != 1 {
		t.Fatalf("Load() = %q, want one problem naming %s", err, path)
	}
	if !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Load() = %q, want it to say the file does not exist", err)
	}
}

// want is one expected problem of a bad file.
type want struct {
	line      int
	key       string
	msgSubstr string
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []want // in order
	}{
		{
			name: "syntax error",
			doc:  "data_dir = \"/d\"\n\n# comment\nname = \n",
			want: []want{{4, "", "invalid TOML"}},
		},
		{
			name: "unterminated table header",
			doc:  "data_dir = \"/d\"\n[raft\nheartbeat_timeout = \"1s\"\n",
			want: []want{{2, "", "invalid TOML"}},
		},
		{
			name: "unknown top-level key",
			doc:  "data_dir = \"/d\"\n# comment\n\ndata_dri = \"/x\"\n",
			want: []want{{4, "data_dri", "unknown key; remove it or check the spelling (known top-level keys: data_dir,"}},
		},
		{
			name: "unknown key in raft",
			doc:  "data_dir = \"/d\"\n\n[raft]\n# the heartbeat\nheartbeat_timeout = \"1s\"\nheartbeat = \"1s\"\n",
			want: []want{{6, "raft.heartbeat", "known keys in [raft]: heartbeat_timeout,"}},
		},
		{
			name: "unknown table",
			doc:  "data_dir = \"/d\"\n[raf]\nheartbeat_timeout = \"1s\"\n",
			want: []want{{2, "raf", "unknown table"}},
		},
		{
			name: "unknown key in inline table",
			doc:  "data_dir = \"/d\"\nlog = { level = \"info\", colour = true }\n",
			want: []want{{2, "log.colour", "known keys in [log]: level, format"}},
		},
		{
			name: "bad duration",
			doc:  "data_dir = \"/d\"\n[raft]\n\nheartbeat_timeout = \"5 parsecs\"\n",
			want: []want{{4, "raft.heartbeat_timeout", `"5 parsecs" is not a duration`}},
		},
		{
			name: "integer duration",
			doc:  "data_dir = \"/d\"\n[raft]\nelection_timeout = 5\n",
			want: []want{{3, "raft.election_timeout", `must be a duration string like "1s"`}},
		},
		{
			name: "zero integer duration",
			doc:  "data_dir = \"/d\"\n[raft]\ncommit_timeout = 0\n",
			want: []want{{3, "raft.commit_timeout", `must be a duration string like "1s"`}},
		},
		{
			name: "string for a number",
			doc:  "data_dir = \"/d\"\n[raft]\nsnapshot_threshold = \"many\"\n",
			want: []want{{3, "raft.snapshot_threshold", "must be a whole number"}},
		},
		{
			name: "negative number",
			doc:  "data_dir = \"/d\"\n[raft]\ntrailing_logs = -3\n",
			want: []want{{3, "raft.trailing_logs", "must be a whole number"}},
		},
		{
			name: "string for a bool",
			doc:  "data_dir = \"/d\"\nbootstrap = \"yes\"\n",
			want: []want{{2, "bootstrap", "must be true or false"}},
		},
		{
			name: "duplicate key",
			doc:  "data_dir = \"/d\"\ndata_dir = \"/e\"\n",
			want: []want{{2, "data_dir", "more than once"}},
		},
		{
			name: "election below heartbeat",
			doc:  "data_dir = \"/d\"\n[raft]\nheartbeat_timeout = \"2s\"\nelection_timeout = \"1s\"\nleader_lease_timeout = \"1s\"\n",
			want: []want{{4, "raft.election_timeout", "must be at least heartbeat_timeout (2s); raise it or lower heartbeat_timeout"}},
		},
		{
			name: "election below default heartbeat",
			doc:  "data_dir = \"/d\"\nraft.election_timeout = \"100ms\"\n",
			want: []want{{2, "raft.election_timeout", "at least heartbeat_timeout (1s)"}},
		},
		{
			name: "heartbeat above default election has no line",
			doc:  "data_dir = \"/d\"\n[raft]\nheartbeat_timeout = \"3s\"\nleader_lease_timeout = \"1s\"\n",
			want: []want{{0, "raft.election_timeout", "at least heartbeat_timeout (3s)"}},
		},
		{
			name: "bad log level",
			doc:  "data_dir = \"/d\"\n\n[log]\nformat = \"json\"\nlevel = \"verbose\"\n",
			want: []want{{5, "log.level", "use one of debug, info, warn, error"}},
		},
		{
			name: "api_addr without port",
			doc:  "data_dir = \"/d\"\napi_addr = \"nope\"\n",
			want: []want{{2, "api_addr", "no port"}},
		},
		{
			name: "api_addr port out of range",
			doc:  "data_dir = \"/d\"\n\napi_addr = \"1.2.3.4:99999\"\n",
			want: []want{{3, "api_addr", "out of range"}},
		},
		{
			name: "raft_advertise unspecified",
			doc:  "data_dir = \"/d\"\nraft_advertise = \"0.0.0.0:7444\"\n",
			want: []want{{2, "raft_advertise", "own IP"}},
		},
		{
			name: "missing data_dir has no line",
			doc:  "name = \"cp-1\"\n",
			want: []want{{0, "data_dir", "required"}},
		},
		{
			name: "two problems",
			doc:  "data_dir = \"/d\"\n[log]\nlevel = \"loud\"\n[raft]\nelection_timeout = \"10ms\"\n",
			want: []want{
				{3, "log.level", "not a log level"},
				{5, "raft.election_timeout", "at least 50ms"},
			},
		},
		{
			name: "unknown key and validation problem",
			doc:  "data_dir = \"/d\"\napi_addr = \"x\"\n[raft]\nsnapshot = 3\n",
			want: []want{
				{2, "api_addr", "no port"},
				{4, "raft.snapshot", "unknown key"},
			},
		},
		{
			name: "bad tls_sans entry",
			doc:  "data_dir = \"/d\"\ntls_sans = [\n  \"a.example\",\n  \"b example\",\n]\n",
			want: []want{{2, "tls_sans", "contains a space"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("cc.toml", []byte(tt.doc))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse() = %v (%T), want *FileError", err, err)
			}
			if fe.Path != "cc.toml" || !strings.HasPrefix(err.Error(), "cc.toml: ") {
				t.Errorf("error %q does not start with the file name", err)
			}
			if len(fe.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d: %v", len(fe.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				p := fe.Problems[i]
				if p.Line != w.line || p.Key != w.key || !strings.Contains(p.Msg, w.msgSubstr) {
					t.Errorf("problem %d = %+v, want line %d, key %q, message containing %q", i, p, w.line, w.key, w.msgSubstr)
				}
			}
		})
	}
}

func TestParseValidationErrorKeepsConfig(t *testing.T) {
	c, err := Parse("cc.toml", []byte("name = \"cp-9\"\n"))
	if err == nil {
		t.Fatal("Parse() = nil error, want the data_dir problem")
	}
	if c.Name != "cp-9" || c.APIAddr != "0.0.0.0:7443" {
		t.Fatalf("Parse() config = %+v, want the decoded config", c)
	}
	c, err = Parse("cc.toml", []byte("name = 3\n"))
	if err == nil || c.Name != "" || c.APIAddr != "" {
		t.Fatalf("Parse() = %+v, %v; want the zero Config and an error", c, err)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{Problem{Line: 3, Key: "raft.election_timeout", Msg: "too short"}, "line 3: raft.election_timeout: too short"},
		{Problem{Key: "data_dir", Msg: "required"}, "data_dir: required"},
		{Problem{Line: 2, Msg: "invalid TOML"}, "line 2: invalid TOML"},
		{Problems{{Line: 1, Key: "a", Msg: "x"}, {Key: "b", Msg: "y"}}, "line 1: a: x; b: y"},
		{&FileError{Path: "/etc/cc.toml", Problems: Problems{{Line: 3, Key: "k", Msg: "m"}, {Line: 5, Key: "j", Msg: "n"}}},
			"/etc/cc.toml: line 3: k: m; line 5: j: n"},
	}
	for _, tt := range tests {
		var got string
		switch v := tt.in.(type) {
		case Problem:
			got = v.String()
		case error:
			got = v.Error()
		}
		if got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.Duration != 90*time.Second {
		t.Fatalf("UnmarshalText(1m30s) = %v, %v", d, err)
	}
	b, err := d.MarshalText()
	if err != nil || string(b) != "1m30s" {
		t.Fatalf("MarshalText() = %q, %v", b, err)
	}
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Fatal("UnmarshalText(soon) = nil error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodFile))
	f.Add([]byte("data_dir = \"/d\"\n[raft]\nheartbeat_timeout = 5\n"))
	f.Add([]byte("log = { level = \"x\", y = 1 }\n[[raft]]\n"))
	f.Add([]byte("data_dir = \"/d\"\n[raft\n"))
	f.Add([]byte("a.b.c = [1, {x = 2}]\n\"quoted.key\" = 'v'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("fuzz.toml", data)
		if err == nil {
			return
		}
		var fe *FileError
		if !errors.As(err, &fe) {
			t.Fatalf("Parse() error %v is %T, want *FileError", err, err)
		}
		if len(fe.Problems) == 0 {
			t.Fatalf("Parse() error %v has no problems", err)
		}
		for _, p := range fe.Problems {
			if p.Msg == "" || p.Line < 0 {
				t.Fatalf("bad problem %+v in %v", p, err)
			}
		}
	})
}

func TestWebhooksAllow(t *testing.T) {
	c, err := Parse("hooks.toml", []byte("data_dir = \"/d\"\n[webhooks]\nallow = [\"10.0.0.0/8\", \"fd00::/8\", \" 127.0.0.1/32 \"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Webhooks.AllowPrefixes()
	if len(got) != 3 || got[0].String() != "10.0.0.0/8" || got[1].String() != "fd00::/8" || got[2].String() != "127.0.0.1/32" {
		t.Fatalf("AllowPrefixes() = %v", got)
	}
	c.Webhooks.Allow = []string{"10.1.2.3", "10.1.2.3/8", "ten", "::1"}
	var ps Problems
	if err := c.Validate(); !errors.As(err, &ps) || len(ps) != 4 {
		t.Fatalf("Validate() = %v, want 4 problems", err)
	}
	for i, want := range []string{`"10.1.2.3/32"`, `"10.0.0.0/8"`, "not a CIDR prefix", `"::1/128"`} {
		if ps[i].Key != "webhooks.allow" || !strings.Contains(ps[i].Msg, want) {
			t.Errorf("problem %d: %v, want webhooks.allow with %s", i, ps[i], want)
		}
	}
}

func TestJoinLimit(t *testing.T) {
	c, err := Parse("join.toml", []byte("data_dir = \"/d\"\n[join_limit]\nper_minute = 0.5\nburst = 3\n"))
	if err != nil || c.JoinLimit != (JoinLimitConfig{PerMinute: 0.5, Burst: 3}) {
		t.Fatalf("Parse() = %+v, %v", c.JoinLimit, err)
	}
	c.JoinLimit = JoinLimitConfig{PerMinute: 0, Burst: 0}
	var ps Problems
	if err := c.Validate(); !errors.As(err, &ps) || len(ps) != 2 || ps[0].Key != "join_limit.per_minute" || ps[1].Key != "join_limit.burst" {
		t.Fatalf("Validate() = %v", err)
	}
}

func TestMinFreeDisk(t *testing.T) {
	if d := Default(); d.MinFreeDisk != (DiskFloor{Bytes: 512 << 20}) || d.MaxOutputDownloads != 4 {
		t.Fatalf("defaults: %+v, %d", d.MinFreeDisk, d.MaxOutputDownloads)
	}
	for in, want := range map[string]DiskFloor{`"1GiB"`: {Bytes: 1 << 30}, `"256M"`: {Bytes: 256 << 20}, `"5%"`: {Percent: 5}, `"0"`: {}, `"1.5 GiB"`: {Bytes: 3 << 29}} {
		c, err := Parse("d.toml", []byte("data_dir = \"/d\"\nmin_free_disk = "+in+"\nmax_output_downloads = 2\n"))
		if err != nil || c.MinFreeDisk != want || c.MaxOutputDownloads != 2 {
			t.Errorf("min_free_disk = %s: %+v, %v", in, c.MinFreeDisk, err)
		}
	}
	for _, in := range []string{`"lots"`, `"120%"`, `"1XB"`, `512`} {
		if _, err := Parse("d.toml", []byte("data_dir = \"/d\"\nmin_free_disk = "+in+"\n")); err == nil || !strings.Contains(err.Error(), "min_free_disk") {
			t.Errorf("min_free_disk = %s: %v", in, err)
		}
	}
	if _, err := Parse("d.toml", []byte("data_dir = \"/d\"\nmax_output_downloads = 0\n")); err == nil || !strings.Contains(err.Error(), "max_output_downloads") {
		t.Errorf("max_output_downloads = 0: %v", err)
	}
}
