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

// Finding 12 of issue 14: node.labels matched the labels a node's agent
// reports, so a join-token holder could attract workloads. Only labels an
// operator set satisfy node.labels; reported ones are node.reported.
func TestReportedLabelsDoNotSatisfyNodeLabels(t *testing.T) {
	want, err := ParseConstraint("node.labels.zone==secure")
	if err != nil {
		t.Fatal(err)
	}
	notOther, err := ParseConstraint("node.labels.zone!=secure")
	if err != nil {
		t.Fatal(err)
	}
	reported, err := ParseConstraint("node.reported.zone==secure")
	if err != nil {
		t.Fatal(err)
	}
	claims := &Node{ID: "n1", Reported: map[string]string{"zone": "secure"}}
	if want.Matches(claims) {
		t.Error("a node reporting zone=secure satisfies node.labels.zone==secure")
	}
	if !notOther.Matches(claims) {
		t.Error("a node reporting zone=secure does not satisfy node.labels.zone!=secure")
	}
	if !reported.Matches(claims) {
		t.Error("node.reported.zone==secure does not see what the node reports")
	}
	set := &Node{ID: "n2", Labels: map[string]string{"zone": "secure"}}
	if !want.Matches(set) || reported.Matches(set) {
		t.Errorf("a node an operator labelled zone=secure: node.labels %v, node.reported %v; want true, false", want.Matches(set), reported.Matches(set))
	}

	// The scheduler places accordingly.
	task := Task{ID: "t1", ServiceID: "s", Constraints: []Constraint{want}}
	nodes := []Node{
		{ID: "claims", Reported: map[string]string{"zone": "secure"}, Ready: true, Active: true},
	}
	res := Place(nodes, nil, []Task{task}, Spread)
	if len(res.Assigned) != 0 {
		t.Fatalf("placed on a node that only reports the label: %v", res.Assigned)
	}
	nodes = append(nodes, Node{ID: "operator", Labels: map[string]string{"zone": "secure"}, Ready: true, Active: true})
	res = Place(nodes, nil, []Task{task}, Spread)
	if res.Assigned["t1"] != "operator" {
		t.Fatalf("assigned %v, want t1 on the node an operator labelled", res.Assigned)
	}
}

func TestParseReportedConstraint(t *testing.T) {
	c, err := ParseConstraint("node.reported.gpu==a100")
	if err != nil || c != (Constraint{"node.reported.gpu", Eq, "a100"}) {
		t.Fatalf("ParseConstraint: %#v, %v", c, err)
	}
	if _, err := ParseConstraint("node.reported.==x"); err == nil || !strings.Contains(err.Error(), "after node.reported. is empty") {
		t.Fatalf("empty reported key: %v", err)
	}
	if err := ValidateSpread("node.reported.zone"); err != nil {
		t.Fatal(err)
	}
}
