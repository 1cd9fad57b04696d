package scheduler

import (
	"fmt"
	"strconv"
	"strings"
)

// tally counts the nodes by the first filter that rules them out for a
// group, in the order: ready, active, constraints, CPU, memory, host
// ports.
type tally struct {
	nodes      int
	notReady   int
	notActive  int
	rules      []int // per rule of the group
	cpu, mem   shortage
	ports      []int // per port of the group
	portsTotal int
}

// shortage counts the nodes with too little of one resource.
type shortage struct {
	unknown int    // nodes that do not report the capacity
	short   int    // nodes with too little free
	most    int64  // the most free among the short nodes
	mostOn  string // the node with the most free
}

// whyNot explains why no node fits a task of g now.
func (s *state) whyNot(g *group) string {
	if len(g.volumes) > 0 {
		return s.volumeWhyNot(g)
	}
	t := s.tally(g)
	static := t.staticParts(g)
	switch {
	case t.nodes == 0:
		return "no node is ready and active (the cluster has no nodes)"
	case t.notReady+t.notActive == t.nodes:
		return "no node is ready and active (" + strings.Join(static, ", ") + ")"
	case t.portsTotal > 0 && t.cpu == (shortage{}) && t.mem == (shortage{}):
		msg := t.portText(g)
		if len(static) > 0 {
			msg += "; the other nodes: " + strings.Join(static, ", ")
		}
		return msg
	}
	parts := append(static, t.resourceParts(g)...)
	for i, c := range t.ports {
		if c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s host port %s taken", c, verb(c, "has", "have"), g.ports[i]))
		}
	}
	if len(parts) == 0 {
		return "no node fits"
	}
	return "no node fits: " + strings.Join(parts, ", ")
}

// tally counts every node under the first filter that rules it out.
func (s *state) tally(g *group) tally {
	t := tally{nodes: len(s.nodes), rules: make([]int, len(g.rules)), ports: make([]int, len(g.ports))}
	for i := range s.nodes {
		n := int32(i)
		ns := &s.nodes[n]
		switch {
		case !ns.node.Ready:
			t.notReady++
		case !ns.node.Active:
			t.notActive++
		case t.countRule(g, ns.node):
		case t.cpu.count(g.reserve.CPUMillis, ns.node.Capacity.CPUMillis, ns.cpu, ns.node):
		case t.mem.count(g.reserve.MemoryBytes, ns.node.Capacity.MemoryBytes, ns.mem, ns.node):
		default:
			t.countPort(s, g, n)
		}
	}
	return t
}

// countRule counts node under the first rule of g it fails, and reports
// whether there is one.
func (t *tally) countRule(g *group, node *Node) bool {
	for i, r := range g.rules {
		if !r.matches(node) {
			t.rules[i]++
			return true
		}
	}
	return false
}

// count counts node if it lacks need of a resource, and reports whether
// it does.
func (sh *shortage) count(need, capacity, used int64, node *Node) bool {
	if fitsIn(need, capacity, used) {
		return false
	}
	if capacity <= 0 {
		sh.unknown++
		return true
	}
	free := max(capacity-used, 0)
	if sh.short == 0 || free > sh.most {
		sh.most, sh.mostOn = free, nodeName(node)
	}
	sh.short++
	return true
}

// countPort counts node n under the first of g's host ports taken on it.
func (t *tally) countPort(s *state, g *group, n int32) {
	for i, p := range g.ports {
		if _, taken := s.ports[slot(n, p)]; taken {
			t.ports[i]++
			t.portsTotal++
			return
		}
	}
}

// staticParts describes the nodes ruled out by readiness, availability
// and constraints.
func (t *tally) staticParts(g *group) []string {
	var parts []string
	if t.notReady > 0 {
		parts = append(parts, fmt.Sprintf("%d not ready", t.notReady))
	}
	if t.notActive > 0 {
		parts = append(parts, fmt.Sprintf("%d paused or drained", t.notActive))
	}
	for i, c := range t.rules {
		if c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s not match %s", c, verb(c, "does", "do"), g.rules[i].text))
		}
	}
	return parts
}

// resourceParts describes the nodes ruled out by CPU and memory.
func (t *tally) resourceParts(g *group) []string {
	var parts []string
	add := func(sh shortage, what string, need string, amount func(int64) string) {
		if sh.unknown > 0 {
			parts = append(parts, fmt.Sprintf("%d %s not report %s %s capacity", sh.unknown, verb(sh.unknown, "does", "do"), verb(sh.unknown, "its", "their"), what))
		}
		if sh.short > 0 {
			parts = append(parts, fmt.Sprintf("%d %s too little free %s (needs %s; the most free is %s on %s)",
				sh.short, verb(sh.short, "has", "have"), what, need, amount(sh.most), sh.mostOn))
		}
	}
	add(t.cpu, "CPU", cpuText(g.reserve.CPUMillis), cpuText)
	add(t.mem, "memory", bytesText(g.reserve.MemoryBytes), bytesText)
	return parts
}

// portText says that host ports are what stops every node that passed the
// other filters.
func (t *tally) portText(g *group) string {
	var taken []string
	for i, c := range t.ports {
		if c > 0 {
			taken = append(taken, g.ports[i].String())
		}
	}
	if len(taken) == 1 {
		return fmt.Sprintf("host port %s is taken on every node that could take it (%d)", taken[0], t.portsTotal)
	}
	return fmt.Sprintf("host ports %s are taken on every node that could take them (%d)", strings.Join(taken, ", "), t.portsTotal)
}

// verb picks the singular or plural form for a count.
func verb(count int, one, many string) string {
	if count == 1 {
		return one
	}
	return many
}

// nodeName is how a reason names a node: its name, or its ID.
func nodeName(n *Node) string {
	if n.Name != "" {
		return n.Name
	}
	return n.ID
}

// cpuText writes thousandths of a core as cores: "1 CPU", "1.5 CPUs".
func cpuText(millis int64) string {
	cores := strconv.FormatFloat(float64(millis)/1000, 'f', -1, 64)
	if millis == 1000 {
		return cores + " CPU"
	}
	return cores + " CPUs"
}

// bytesText writes bytes in binary units with one decimal: "512 B",
// "1.5 MiB", "2.0 GiB".
func bytesText(b int64) string {
	if b < 1024 {
		return strconv.FormatInt(b, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, i := float64(b)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + units[i]
}

// Kinds of the reasons a task stays pending, as ReasonKind sorts them.
const (
	ReasonNoReadyNode = "no_ready_node"
	ReasonConstraints = "constraints"
	ReasonResources   = "resources"
	ReasonHostPorts   = "host_ports"
	ReasonInvalid     = "invalid_placement"
	ReasonOther       = "other"
)

// ReasonKinds are the kinds ReasonKind returns.
var ReasonKinds = []string{ReasonNoReadyNode, ReasonConstraints, ReasonResources, ReasonHostPorts, ReasonInvalid, ReasonOther}

// ReasonKind sorts a reason Place gave into a few kinds (for metrics): the
// filter furthest along that ruled out some node, since the nodes it ruled
// out passed every filter before it. Host ports are checked last, then CPU
// and memory, then constraints, and readiness first.
func ReasonKind(reason string) string {
	switch {
	case strings.HasPrefix(reason, "invalid placement"):
		return ReasonInvalid
	case strings.Contains(reason, "host port"):
		return ReasonHostPorts
	case strings.Contains(reason, "too little free"), strings.Contains(reason, "capacity"):
		return ReasonResources
	case strings.Contains(reason, "not match"):
		return ReasonConstraints
	case strings.Contains(reason, "not ready"), strings.HasSuffix(reason, "which is down"), strings.Contains(reason, "paused or drained"), strings.Contains(reason, "no node is ready"):
		return ReasonNoReadyNode
	}
	return ReasonOther
}

// volumeWhyNot explains why a task that mounts volumes cannot run on the
// node that holds their data.
func (s *state) volumeWhyNot(g *group) string {
	v := g.volumes[0]
	for _, o := range g.volumes[1:] {
		if o.NodeID != v.NodeID {
			return fmt.Sprintf("volume %q lives on node %s and volume %q on node %s: a task can mount volumes of one node only", v.Name, v.NodeID, o.Name, o.NodeID)
		}
	}
	n, ok := s.index[v.NodeID]
	if !ok {
		return fmt.Sprintf("volume data of %q lives on node %s, which is not in the cluster", v.Name, v.NodeID)
	}
	ns := &s.nodes[n]
	where := fmt.Sprintf("volume data of %q lives on node %s", v.Name, nodeName(ns.node))
	if !ns.node.Ready {
		return where + ", which is down"
	}
	if !ns.node.Active {
		return where + ", which is paused or drained"
	}
	var t tally
	t.nodes = 1
	switch {
	case t.countRule(g, ns.node):
		for i, c := range t.rules {
			if c > 0 {
				return where + ", which does not match " + g.rules[i].text
			}
		}
	case t.cpu.count(g.reserve.CPUMillis, ns.node.Capacity.CPUMillis, ns.cpu, ns.node),
		t.mem.count(g.reserve.MemoryBytes, ns.node.Capacity.MemoryBytes, ns.mem, ns.node):
		return where + ", which is full: " + strings.Join(t.resourceParts(g), ", ")
	}
	t.ports = make([]int, len(g.ports))
	t.countPort(s, g, n)
	if t.portsTotal > 0 {
		return where + ", where " + t.portText(g)
	}
	return where + ", which cannot take it"
}
