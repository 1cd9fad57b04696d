package fsm

// maxPendingChanges bounds the ids a ChangeFeed holds between two reads;
// beyond it the feed asks for a full read instead.
const maxPendingChanges = 1 << 16

// Changes is what changed, since a ChangeFeed was last read, of the
// records the API's watch streams follow.
type Changes struct {
	// All: read everything again (a restore, or too much changed).
	All bool
	// Nodes are nodes whose record changed or that were removed, or whose
	// placed tasks changed (what is allocated on them).
	Nodes map[string]struct{}
	// Containers are containers whose record changed or that were removed.
	Containers map[string]struct{}
	// Services are services whose record changed or that were removed,
	// or one of whose tasks changed (their counts).
	Services map[string]struct{}
}

// Empty reports whether nothing changed.
func (c *Changes) Empty() bool {
	return !c.All && len(c.Nodes) == 0 && len(c.Containers) == 0 && len(c.Services) == 0
}

func (c *Changes) size() int { return len(c.Nodes) + len(c.Containers) + len(c.Services) }

func (c *Changes) all() { c.All, c.Nodes, c.Containers, c.Services = true, nil, nil, nil }

func addID(set *map[string]struct{}, id string) {
	if *set == nil {
		*set = map[string]struct{}{}
	}
	(*set)[id] = struct{}{}
}

func (c *Changes) node(id string) {
	if !c.All && id != "" {
		addID(&c.Nodes, id)
	}
}

func (c *Changes) container(id string) {
	if !c.All && id != "" {
		addID(&c.Containers, id)
	}
}

func (c *Changes) service(id string) {
	if !c.All && id != "" {
		addID(&c.Services, id)
	}
}

func (c *Changes) merge(o *Changes) {
	if c.All {
		return
	}
	if o.All || c.size()+o.size() > maxPendingChanges {
		c.all()
		return
	}
	for id := range o.Nodes {
		c.node(id)
	}
	for id := range o.Containers {
		c.container(id)
	}
	for id := range o.Services {
		c.service(id)
	}
}

// ChangeFeed tells one reader (an API watch stream) which node, container
// and service records changed: C is ready when something did; Take returns
// it and starts over. Changes applied after SubscribeChanges returns are
// all reported, once committed, so a read begun after Take sees them.
type ChangeFeed struct {
	f       *FSM
	c       chan struct{}
	pending Changes // guarded by f.watchMu
}

// SubscribeChanges starts a feed of the changed node, container and
// service records. Close it when done.
func (f *FSM) SubscribeChanges() *ChangeFeed {
	feed := &ChangeFeed{f: f, c: make(chan struct{}, 1)}
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	f.changeFeeds[feed] = struct{}{}
	return feed
}

// C is ready when changes are waiting for Take.
func (c *ChangeFeed) C() <-chan struct{} { return c.c }

// Take returns the changes since the last Take (or the subscription) and
// forgets them.
func (c *ChangeFeed) Take() Changes {
	c.f.watchMu.Lock()
	defer c.f.watchMu.Unlock()
	out := c.pending
	c.pending = Changes{}
	return out
}

// Close ends the feed.
func (c *ChangeFeed) Close() {
	c.f.watchMu.Lock()
	defer c.f.watchMu.Unlock()
	delete(c.f.changeFeeds, c)
}

// notifyChanges hands a batch's changes to the feeds.
func (f *FSM) notifyChanges(t *Changes) {
	if t.Empty() {
		return
	}
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	for feed := range f.changeFeeds {
		feed.pending.merge(t)
		select {
		case feed.c <- struct{}{}:
		default:
		}
	}
}
