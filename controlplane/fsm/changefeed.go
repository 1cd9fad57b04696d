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
type ChangeFeed = Feed[Changes, *Changes]

// SubscribeChanges starts a feed of the changed node, container and
// service records. Close it when done.
func (f *FSM) SubscribeChanges() *ChangeFeed { return subscribe(f, f.changeFeeds) }

// notifyChanges hands a batch's changes to the feeds.
func (f *FSM) notifyChanges(t *Changes) {
	if !t.Empty() {
		notifyFeeds(f, f.changeFeeds, t)
	}
}

// changeSet is a set of changes a Feed gathers: merge adds o's to it.
type changeSet[C any] interface {
	*C
	merge(o *C)
}

// Feed gathers, for one reader, the changes of the batches applied since
// it last read them (Take): ContainerFeed and ChangeFeed.
type Feed[C any, P changeSet[C]] struct {
	f       *FSM
	set     map[*Feed[C, P]]struct{} // the FSM's feeds of this kind
	c       chan struct{}
	pending C // guarded by f.watchMu
}

// subscribe adds a feed to one of the FSM's sets of feeds.
func subscribe[C any, P changeSet[C]](f *FSM, set map[*Feed[C, P]]struct{}) *Feed[C, P] {
	feed := &Feed[C, P]{f: f, set: set, c: make(chan struct{}, 1)}
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	set[feed] = struct{}{}
	return feed
}

// C is ready when changes are waiting for Take.
func (x *Feed[C, P]) C() <-chan struct{} { return x.c }

// Take returns the changes since the last Take (or the subscription) and
// forgets them.
func (x *Feed[C, P]) Take() C {
	x.f.watchMu.Lock()
	defer x.f.watchMu.Unlock()
	out := x.pending
	var none C
	x.pending = none
	return out
}

// Close ends the feed.
func (x *Feed[C, P]) Close() {
	x.f.watchMu.Lock()
	defer x.f.watchMu.Unlock()
	delete(x.set, x)
}

// notifyFeeds merges a batch's changes into every feed of a set and
// signals each.
func notifyFeeds[C any, P changeSet[C]](f *FSM, set map[*Feed[C, P]]struct{}, t *C) {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	for feed := range set {
		P(&feed.pending).merge(t)
		select {
		case feed.c <- struct{}{}:
		default:
		}
	}
}
