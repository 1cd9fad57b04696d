package scheduler

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConstraint(t *testing.T) {
	tests := []struct {
		in      string
		want    Constraint
		wantErr string // a part of the error; "" for none
	}{
		{in: "node.labels.zone==a", want: Constraint{"node.labels.zone", Eq, "a"}},
		{in: "node.name != db1", want: Constraint{"node.name", Ne, "db1"}},
		{in: "  node.id==x  ", want: Constraint{"node.id", Eq, "x"}},
		{in: "node.labels.k8s.io/role==web", want: Constraint{"node.labels.k8s.io/role", Eq, "web"}},
		{in: "node.labels.x==a==b", want: Constraint{"node.labels.x", Eq, "a==b"}},
		{in: "node.labels.x!==b", want: Constraint{"node.labels.x", Ne, "=b"}},
		{in: "node.labels.x==!=b", want: Constraint{"node.labels.x", Eq, "!=b"}},
		{in: "node.name==a b", want: Constraint{"node.name", Eq, "a b"}},
		{in: "node.hostname==", wantErr: `unknown attribute "node.hostname"`},
		{in: "node.hostname==web", wantErr: `unknown attribute "node.hostname"`},
		{in: "node.name==", wantErr: "the value is empty"},
		{in: "node.name", wantErr: "no == or != operator"},
		{in: "node.name=web", wantErr: "no == or != operator"},
		{in: "", wantErr: "no == or != operator"},
		{in: "==a", wantErr: "the attribute is empty"},
		{in: "node.labels.==a", wantErr: "label key after node.labels. is empty"},
		{in: "node.labels.a b==c", wantErr: `label key "a b" may contain only`},
		{in: "node.labels.a!==c", wantErr: "", want: Constraint{"node.labels.a", Ne, "=c"}},
		{in: "node.ID==x", wantErr: `unknown attribute "node.ID"`},
		{in: "node.name==a\x00b", wantErr: "control character"},
		{in: "node.name==\xff", wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		got, err := ParseConstraint(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseConstraint(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				continue
			}
			if !errors.Is(err, ErrInvalidConstraint) {
				t.Errorf("ParseConstraint(%q) error %v does not wrap ErrInvalidConstraint", tt.in, err)
			}
			if !strings.Contains(err.Error(), "ATTRIBUTE==VALUE") {
				t.Errorf("ParseConstraint(%q) error %q does not show the accepted form", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseConstraint(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
		}
	}
}

func TestConstraintString(t *testing.T) {
	c, err := ParseConstraint(" node.labels.zone  ==  a ")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.String(), "node.labels.zone==a"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestConstraintMatches(t *testing.T) {
	n := &Node{ID: "n1", Name: "web1", Labels: map[string]string{"zone": "a", "empty": ""}}
	tests := []struct {
		c    string
		want bool
	}{
		{"node.labels.zone==a", true},
		{"node.labels.zone==b", false},
		{"node.labels.zone!=a", false},
		{"node.labels.zone!=b", true},
		{"node.labels.missing==a", false}, // a missing label equals nothing
		{"node.labels.missing!=a", true},  // and differs from everything
		{"node.id==n1", true},
		{"node.id!=n1", false},
		{"node.name==web1", true},
		{"node.name!=web1", false},
		{"node.name==n1", false},
	}
	for _, tt := range tests {
		c, err := ParseConstraint(tt.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Matches(n); got != tt.want {
			t.Errorf("%s.Matches(%+v) = %v, want %v", tt.c, n, got, tt.want)
		}
	}
	// A label set to "" is present: it differs from "a" and equals nothing
	// a parsed constraint can say, since values are not empty.
	if !(Constraint{"node.labels.empty", Ne, "a"}).Matches(n) {
		t.Error(`node.labels.empty!=a does not match a node whose label is ""`)
	}
	if (Constraint{"node.hostname", Eq, "web1"}).Matches(n) {
		t.Error("an invalid constraint matches")
	}
}

func TestConstraintValidate(t *testing.T) {
	tests := []struct {
		c       Constraint
		wantErr string
	}{
		{Constraint{"node.id", Eq, "x"}, ""},
		{Constraint{"node.id", "=", "x"}, `unknown operator "="`},
		{Constraint{"node.id", "", "x"}, `unknown operator ""`},
		{Constraint{"node.id", Eq, " x"}, "white space"},
		{Constraint{"node.labels.a=b", Eq, "x"}, "may contain only"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%#v.Validate() = %v, want an error containing %q", tt.c, err, tt.wantErr)
		}
	}
}

func TestValidateSpread(t *testing.T) {
	tests := []struct {
		attr    string
		wantErr string
	}{
		{"node.id", ""},
		{"node.name", ""},
		{"node.labels.zone", ""},
		{"node.labels.", "label key after node.labels. is empty"},
		{"node.zone", `unknown attribute "node.zone"`},
		{"", "the attribute is empty"},
		{" node.id", "unknown attribute"},
	}
	for _, tt := range tests {
		err := ValidateSpread(tt.attr)
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ValidateSpread(%q) = %v, want an error containing %q", tt.attr, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrInvalidSpread) {
			t.Errorf("ValidateSpread(%q) error does not wrap ErrInvalidSpread", tt.attr)
		}
	}
}

func FuzzParseConstraint(f *testing.F) {
	for _, s := range []string{
		"node.labels.zone==a", "node.name != db1", "node.id==x", "node.hostname==",
		"node.labels.x!==b", "node.labels.x==!=b", "==", "!=", " node.labels.a-b/c == d e ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConstraint(s)
		if err != nil {
			if c != (Constraint{}) {
				t.Fatalf("ParseConstraint(%q) = %#v with error %v", s, c, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConstraint(%q) = %#v, which does not validate: %v", s, c, err)
		}
		again, err := ParseConstraint(c.String())
		if err != nil || again != c {
			t.Fatalf("ParseConstraint(%q) = %#v; its String %q parses to %#v, %v", s, c, c.String(), again, err)
		}
		c.Matches(&Node{Labels: map[string]string{"zone": "a"}})
	})
}
