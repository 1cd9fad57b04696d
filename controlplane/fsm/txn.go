package fsm

import (
	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/controlplane/metrics"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// txn is the write transaction of one applied batch, with a note of what
// it changed for which nodes, so that only their sessions wake and read
// only that.
type txn struct {
	*bolt.Tx
	touched *touch
	// index is the raft index of the entry being applied.
	index uint64
	// jobsChanged: the batch changed a job (wakes job watchers).
	jobsChanged bool
	// audited are the audit records the batch wrote.
	audited []*ccv1.AuditEvent
	// tracer starts apply spans; nil: none.
	tracer trace.Tracer
	// trace is the trace context of the command being applied: the
	// records it creates keep it.
	trace map[string]string
	// observe: the batch notes jobEvents, for the metrics.
	observe   bool
	jobEvents []metrics.JobEvent
}

// touch is what a batch changed that the agents' sessions send: for each
// node, the containers whose assignment changed (or all of them), whether
// its volume list or its record changed; and whether the server list or
// the trust record changed. A session reads only that (NodeFeed).
type touch struct {
	nodes   map[string]*NodeChanges
	servers bool
	// tasks are the containers whose record changed in any way, for
	// the leader's orchestrator (ContainerFeed).
	tasks ContainerChanges
	// api is what the API's watch streams follow (ChangeFeed).
	api Changes
}

func newTouch() *touch { return &touch{nodes: map[string]*NodeChanges{}} }

// task notes that a container's record changed (its status too).
func (t *touch) task(c *ccv1.Container) {
	t.tasks.add(c.Id)
	t.api.container(c.Id)
	t.api.service(c.ServiceId)
}

// service notes that a service's record changed or that it was removed.
func (t *touch) service(id string) { t.api.service(id) }

func (t *touch) of(nodeID string) *NodeChanges {
	c := t.nodes[nodeID]
	if c == nil {
		c = &NodeChanges{}
		t.nodes[nodeID] = c
	}
	return c
}

// node notes that the assignments of a node changed without saying which:
// its session reads them all.
func (t *touch) node(id string) {
	if id != "" {
		t.of(id).Rescan = true
		t.tasks.addNode(id)
		t.api.node(id)
	}
}

// container notes that the assignment of one container on a node changed
// (created, assigned, a new generation, removed).
func (t *touch) container(c *ccv1.Container) {
	t.task(c)
	if c.NodeId != "" {
		t.of(c.NodeId).addContainer(c.Id)
		t.api.node(c.NodeId)
	}
}

// volumes notes that the volume list of a node changed.
func (t *touch) volumes(nodeID string) {
	if nodeID != "" {
		t.of(nodeID).Volumes = true
	}
}

// record notes that a node's record changed (its state) or that the node
// was removed.
func (t *touch) record(nodeID string) {
	if nodeID != "" {
		t.of(nodeID).Node = true
		t.tasks.addNodeRecord(nodeID)
		t.api.node(nodeID)
	}
}

// all notes that the server list or the trust record changed: every
// session sends them.
func (t *touch) all() { t.servers = true }

// maxPendingContainers bounds the container ids a feed holds between two
// reads; beyond it the feed asks for a full read of the node instead.
const maxPendingContainers = 1024

// NodeChanges is what changed for a node since a feed was last read.
type NodeChanges struct {
	// Rescan: read every assignment of the node (what changed is not
	// known, or too much changed).
	Rescan bool
	// Containers are the containers whose assignment may have changed
	// (created, assigned, a new generation, removed), when not Rescan.
	Containers map[string]struct{}
	// Volumes: the node's volume list may have changed.
	Volumes bool
	// Node: the node's record changed or the node was removed.
	Node bool
	// Servers: the server list or the trust record may have changed.
	Servers bool
}

// Empty reports whether nothing changed.
func (c *NodeChanges) Empty() bool {
	return !c.Rescan && len(c.Containers) == 0 && !c.Volumes && !c.Node && !c.Servers
}

func (c *NodeChanges) addContainer(id string) {
	if c.Rescan {
		return
	}
	if c.Containers == nil {
		c.Containers = map[string]struct{}{}
	}
	c.Containers[id] = struct{}{}
	if len(c.Containers) > maxPendingContainers {
		c.Rescan, c.Containers = true, nil
	}
}

func (c *NodeChanges) merge(o *NodeChanges) {
	c.Volumes = c.Volumes || o.Volumes
	c.Node = c.Node || o.Node
	c.Servers = c.Servers || o.Servers
	if o.Rescan {
		c.Rescan, c.Containers = true, nil
	}
	for id := range o.Containers {
		c.addContainer(id)
	}
}

// NodeFeed tells one reader (an agent's session) what changed for a node:
// C is ready when something did; Take returns it and starts over. Changes
// applied after SubscribeNode returns are all reported.
type NodeFeed struct {
	f       *FSM
	node    string
	c       chan struct{}
	pending NodeChanges // guarded by f.watchMu
}

// SubscribeNode starts a feed of the changes of a node. Close it when done.
func (f *FSM) SubscribeNode(nodeID string) *NodeFeed {
	feed := &NodeFeed{f: f, node: nodeID, c: make(chan struct{}, 1)}
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	feeds := f.nodeFeeds[nodeID]
	if feeds == nil {
		feeds = map[*NodeFeed]struct{}{}
		f.nodeFeeds[nodeID] = feeds
	}
	feeds[feed] = struct{}{}
	return feed
}

// C is ready when changes are waiting for Take.
func (n *NodeFeed) C() <-chan struct{} { return n.c }

// Take returns the changes since the last Take (or the subscription) and
// forgets them.
func (n *NodeFeed) Take() NodeChanges {
	n.f.watchMu.Lock()
	defer n.f.watchMu.Unlock()
	out := n.pending
	n.pending = NodeChanges{}
	return out
}

// Close ends the feed.
func (n *NodeFeed) Close() {
	n.f.watchMu.Lock()
	defer n.f.watchMu.Unlock()
	if feeds := n.f.nodeFeeds[n.node]; feeds != nil {
		delete(feeds, n)
		if len(feeds) == 0 {
			delete(n.f.nodeFeeds, n.node)
		}
	}
}

// add merges changes in and signals C; the caller holds f.watchMu.
func (n *NodeFeed) add(c *NodeChanges) {
	n.pending.merge(c)
	select {
	case n.c <- struct{}{}:
	default:
	}
}

// notifyNodes hands a batch's changes to the feeds of the nodes it
// touched (every feed when the server list changed).
func (f *FSM) notifyNodes(t *touch) {
	if len(t.nodes) == 0 && !t.servers {
		return
	}
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	if t.servers {
		servers := &NodeChanges{Servers: true}
		for _, feeds := range f.nodeFeeds {
			for feed := range feeds {
				feed.add(servers)
			}
		}
	}
	for id, c := range t.nodes {
		for feed := range f.nodeFeeds[id] {
			feed.add(c)
		}
	}
}

// notifyAllNodes tells every feed to read everything again (a restore).
func (f *FSM) notifyAllNodes() {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	all := &NodeChanges{Rescan: true, Volumes: true, Node: true, Servers: true}
	for _, feeds := range f.nodeFeeds {
		for feed := range feeds {
			feed.add(all)
		}
	}
}

// maxPendingTasks bounds the container ids a ContainerFeed holds between
// two reads; beyond it the feed asks for a full read instead.
const maxPendingTasks = 1 << 18

// ContainerChanges is what changed of the container records (and of the
// node records) since a ContainerFeed was last read.
type ContainerChanges struct {
	// All: read every container record and every node record again.
	All bool
	// IDs are the containers whose record changed or that were removed.
	IDs map[string]struct{}
	// Nodes are nodes whose every container record may have changed.
	Nodes map[string]struct{}
	// NodeRecords are the nodes whose own record changed (joined,
	// updated, removed).
	NodeRecords map[string]struct{}
}

func (c *ContainerChanges) addNodeRecord(id string) {
	if c.All {
		return
	}
	if c.NodeRecords == nil {
		c.NodeRecords = map[string]struct{}{}
	}
	c.NodeRecords[id] = struct{}{}
}

func (c *ContainerChanges) add(id string) {
	if c.All || id == "" {
		return
	}
	if c.IDs == nil {
		c.IDs = map[string]struct{}{}
	}
	c.IDs[id] = struct{}{}
	if len(c.IDs) > maxPendingTasks {
		c.All, c.IDs, c.Nodes, c.NodeRecords = true, nil, nil, nil
	}
}

func (c *ContainerChanges) addNode(id string) {
	if c.All {
		return
	}
	if c.Nodes == nil {
		c.Nodes = map[string]struct{}{}
	}
	c.Nodes[id] = struct{}{}
}

func (c *ContainerChanges) empty() bool {
	return !c.All && len(c.IDs) == 0 && len(c.Nodes) == 0 && len(c.NodeRecords) == 0
}

func (c *ContainerChanges) merge(o *ContainerChanges) {
	if o.All {
		c.All, c.IDs, c.Nodes, c.NodeRecords = true, nil, nil, nil
	}
	for id := range o.IDs {
		c.add(id)
	}
	for id := range o.Nodes {
		c.addNode(id)
	}
	for id := range o.NodeRecords {
		c.addNodeRecord(id)
	}
}

// ContainerFeed tells one reader (the leader's orchestrator) which
// container and node records changed, so that it keeps a copy up to date without
// reading them all. Changes applied after SubscribeContainers returns are
// all reported; a change is reported once it is committed, so a read
// begun after Take sees it.
type ContainerFeed = Feed[ContainerChanges, *ContainerChanges]

// SubscribeContainers starts a feed of the changed container records.
// Close it when done.
func (f *FSM) SubscribeContainers() *ContainerFeed { return subscribe(f, f.containerFeeds) }

// notifyContainers hands a batch's changed containers to the feeds.
func (f *FSM) notifyContainers(t *ContainerChanges) {
	if !t.empty() {
		notifyFeeds(f, f.containerFeeds, t)
	}
}
