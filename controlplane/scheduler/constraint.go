package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors returned by ParseConstraint, Constraint.Validate and
// ValidateSpread wrap one of these.
var (
	ErrInvalidConstraint = errors.New("invalid placement constraint")
	ErrInvalidSpread     = errors.New("invalid spread attribute")
)

// Op is the comparison a constraint makes.
type Op string

// The two comparisons of a constraint.
const (
	Eq Op = "=="
	Ne Op = "!="
)

// constraintForm is the accepted syntax, quoted in every parse error.
const constraintForm = `write ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE, where ATTRIBUTE is node.id, node.name, node.labels.<key> (a label an operator set) or node.reported.<key> (a label the node's agent reports) (for example "node.labels.zone==a")`

// attrForms is the accepted attributes, quoted in spread errors.
const attrForms = "use node.id, node.name, node.labels.<key> or node.reported.<key> (for example node.labels.zone)"

// labelPrefix starts an attribute naming a label an operator set on a node;
// reportedPrefix one naming a label the node's agent reports, which anyone
// holding a join token can make say anything.
const (
	labelPrefix    = "node.labels."
	reportedPrefix = "node.reported."
)

// Constraint is one placement rule a node must satisfy, such as
// node.labels.zone==a.
type Constraint struct {
	Attr  string // node.id, node.name, node.labels.<key> or node.reported.<key>
	Op    Op
	Value string
}

// ParseConstraint parses "ATTRIBUTE==VALUE" or "ATTRIBUTE!=VALUE", with
// optional white space around the operator. The value is everything after
// the first operator, so it may itself contain "==" or "!=". The value may
// not be empty.
func ParseConstraint(s string) (Constraint, error) {
	i, op := findOp(s)
	if i < 0 {
		return Constraint{}, fmt.Errorf("%w %q: no == or != operator; %s", ErrInvalidConstraint, s, constraintForm)
	}
	c := Constraint{
		Attr:  strings.TrimSpace(s[:i]),
		Op:    op,
		Value: strings.TrimSpace(s[i+len(op):]),
	}
	if problem := c.problem(); problem != "" {
		return Constraint{}, fmt.Errorf("%w %q: %s; %s", ErrInvalidConstraint, s, problem, constraintForm)
	}
	return c, nil
}

// findOp returns the position and kind of the first "==" or "!=" in s, or
// -1.
func findOp(s string) (int, Op) {
	eq, ne := strings.Index(s, string(Eq)), strings.Index(s, string(Ne))
	switch {
	case eq < 0 && ne < 0:
		return -1, ""
	case ne < 0 || (eq >= 0 && eq < ne):
		return eq, Eq
	default:
		return ne, Ne
	}
}

// Validate reports whether c is a constraint ParseConstraint could have
// returned.
func (c Constraint) Validate() error {
	if problem := c.problem(); problem != "" {
		return fmt.Errorf("%w %q: %s; %s", ErrInvalidConstraint, c.String(), problem, constraintForm)
	}
	return nil
}

// problem says what is wrong with c, or "".
func (c Constraint) problem() string {
	if _, problem := parseAttr(c.Attr); problem != "" {
		return problem
	}
	switch {
	case c.Op != Eq && c.Op != Ne:
		return fmt.Sprintf("unknown operator %q", string(c.Op))
	case c.Value == "":
		return "the value is empty"
	case c.Value != strings.TrimSpace(c.Value):
		return "the value starts or ends with white space"
	case !utf8.ValidString(c.Value):
		return "the value is not valid UTF-8"
	case strings.IndexFunc(c.Value, unicode.IsControl) >= 0:
		return "the value contains a control character"
	}
	return ""
}

// String returns c in the canonical form ParseConstraint reads back, such
// as "node.labels.zone==a".
func (c Constraint) String() string {
	return c.Attr + string(c.Op) + c.Value
}

// Matches reports whether node n satisfies c. A missing label never equals
// a value and always differs from it. An invalid constraint matches no
// node.
func (c Constraint) Matches(n *Node) bool {
	a, problem := parseAttr(c.Attr)
	if problem != "" {
		return false
	}
	return rule{attr: a, op: c.Op, value: c.Value}.matches(n)
}

// ValidateSpread reports whether attr is an attribute tasks can be spread
// over: node.id, node.name, node.labels.<key> or node.reported.<key>.
func ValidateSpread(attr string) error {
	if _, problem := parseAttr(attr); problem != "" {
		return fmt.Errorf("%w %q: %s; %s", ErrInvalidSpread, attr, problem, attrForms)
	}
	return nil
}

// attrKind is which part of a node an attribute reads.
type attrKind uint8

const (
	attrID attrKind = iota + 1
	attrName
	attrLabel    // an operator's label
	attrReported // a label the agent reports
)

// attribute is a parsed node.id, node.name, node.labels.<key> or
// node.reported.<key>.
type attribute struct {
	kind attrKind
	key  string // the label key
}

// parseAttr parses s, or says what is wrong with it.
func parseAttr(s string) (attribute, string) {
	switch {
	case s == "node.id":
		return attribute{kind: attrID}, ""
	case s == "node.name":
		return attribute{kind: attrName}, ""
	case strings.HasPrefix(s, labelPrefix):
		return labelAttr(attrLabel, labelPrefix, s[len(labelPrefix):])
	case strings.HasPrefix(s, reportedPrefix):
		return labelAttr(attrReported, reportedPrefix, s[len(reportedPrefix):])
	case s == "":
		return attribute{}, "the attribute is empty"
	default:
		return attribute{}, fmt.Sprintf("unknown attribute %q", s)
	}
}

// labelAttr checks the key of a label attribute.
func labelAttr(kind attrKind, prefix, key string) (attribute, string) {
	if key == "" {
		return attribute{}, fmt.Sprintf("the label key after %s is empty", prefix)
	}
	if strings.IndexFunc(key, badLabelRune) >= 0 {
		return attribute{}, fmt.Sprintf("label key %q may contain only letters, digits, '.', '-', '_' and '/'", key)
	}
	return attribute{kind: kind, key: key}, ""
}

// badLabelRune reports whether r may not appear in a label key. Keeping
// '=', '!' and spaces out of keys is what makes String and
// ParseConstraint inverse to each other.
func badLabelRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	case r == '.', r == '-', r == '_', r == '/':
		return false
	}
	return true
}

// value returns the attribute of n, and whether n has it (only a label
// can be missing).
func (a attribute) value(n *Node) (string, bool) {
	switch a.kind {
	case attrID:
		return n.ID, true
	case attrName:
		return n.Name, true
	case attrLabel:
		v, ok := n.Labels[a.key]
		return v, ok
	case attrReported:
		v, ok := n.Reported[a.key]
		return v, ok
	}
	return "", false
}

// rule is a validated constraint with its attribute parsed once.
type rule struct {
	attr  attribute
	op    Op
	value string
	text  string // the canonical form, for keys and reasons
}

// matches reports whether n satisfies r.
func (r rule) matches(n *Node) bool {
	v, ok := r.attr.value(n)
	if r.op == Eq {
		return ok && v == r.value
	}
	return !ok || v != r.value
}
