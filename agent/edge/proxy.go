package edge

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containercodes/cc/agent/edge/balance"
	"github.com/containercodes/cc/agent/edge/compress"
	"github.com/containercodes/cc/agent/edge/health"
	"github.com/containercodes/cc/agent/edge/ratelimit"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// route is the immutable form of a route in one table.
type route struct {
	s          *Server
	name       string
	spec       *ccv1.RouteSpec
	prefix     string // normalized
	strip      bool
	kind       balance.Kind
	hashHeader string
	retries    int
	timeout    time.Duration
	maxBody    int64
	headerUp   headerRules
	headerDown headerRules
	cors       *cors
	limiter    *ratelimit.Limiter

	ups     []balance.Upstream
	upNodes []string // the node of each upstream's task
	states  []*health.State
	policy  balance.Policy
	check   health.Check
	checkID string

	proxy *httputil.ReverseProxy
}

// Errors a request can end with.
var (
	errNoUpstream      = errors.New("no healthy upstream")
	errUpstreamTimeout = errors.New("upstream response headers timed out")
)

// ServeHTTP finds the route or site of r in the current table.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.active.Add(1)
	defer s.active.Add(-1)
	t := s.table.Load()
	rec := &record{reqID: requestID(r.Header.Get("X-Request-Id")), client: clientIP(r.RemoteAddr)}
	sw := &statusWriter{rw: w}
	sw.Header().Set("X-Request-Id", rec.reqID)
	r, endSpan := s.traceRequest(r)
	defer func() { endSpan(rec, sw) }()
	defer func() {
		s.logAccess(r, rec, sw, start)
		s.opts.Metrics.EdgeServed(rec.route, responseStatus(r, sw), rec.upstreamNode, time.Since(start))
	}()
	if r.TLS != nil {
		if alt := s.altSvc.Load(); alt != nil && r.ProtoMajor < 3 {
			sw.Header().Set("Alt-Svc", *alt)
		}
	}
	if s.serveChallenge(sw, r) {
		rec.route = "acme-challenge"
		return
	}

	if r.Method == http.MethodConnect {
		plain(sw, http.StatusMethodNotAllowed, "CONNECT is not served")
		return
	}
	if p, changed := cleanPath(r.URL.Path); changed {
		// match and forward the same path: "/api/../admin" is "/admin",
		// never a way past a route's prefix
		u := *r.URL
		u.Path, u.RawPath = p, ""
		r2 := *r
		r2.URL = &u
		r = &r2
	}
	id, prefix, ok := t.match.Lookup(r.Host, r.URL.Path)
	if !ok {
		plain(sw, http.StatusNotFound, "no route or site for this host and path")
		return
	}
	tg := t.targets[id]
	switch {
	case r.TLS != nil && !tg.tls.on:
		// One table serves both listeners; a route or site without TLS is
		// not served over HTTPS (its host may share a certificate).
		plain(sw, http.StatusMisdirectedRequest, "this host and path are served over plain HTTP only")
		return
	case r.TLS != nil && tg.tls.hsts != "":
		sw.Header().Set("Strict-Transport-Security", tg.tls.hsts)
	case r.TLS == nil && tg.tls.on && tg.tls.redirect && s.httpsLn != nil:
		s.redirectHTTPS(sw, r)
		return
	}
	if st := tg.site; st != nil {
		rec.route = "site:" + st.name
		if st.handler == nil {
			sw.Header().Set("Retry-After", "5")
			plain(sw, http.StatusServiceUnavailable, "site not ready on this node")
			return
		}
		st.handler.ServeHTTP(sw, stripPrefix(r, prefix))
		return
	}
	rt := tg.route
	rec.route = rt.name
	rt.serve(sw, r, rec)
}

func (rt *route) serve(w http.ResponseWriter, r *http.Request, rec *record) {
	if rt.limiter != nil {
		if ok, wait := rt.limiter.Allow(rec.client, time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			plain(w, http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
	}
	if rt.cors != nil {
		if origin := r.Header.Get("Origin"); origin != "" {
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				rt.cors.preflight(w, r, origin)
				return
			}
			if rt.cors.allowed(origin) {
				rec.corsOrigin = origin
			}
		}
	}
	limitBody := rt.maxBody > 0 && r.Body != nil && r.Body != http.NoBody
	if limitBody && r.ContentLength > rt.maxBody {
		w.Header().Set("Connection", "close")
		plain(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	if len(rt.ups) == 0 {
		w.Header().Set("Retry-After", "5")
		plain(w, http.StatusServiceUnavailable, "no upstream for this route")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), recordKey{}, rec)) // a copy: ours to change
	if limitBody {
		r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
	}
	if cw := compress.NewWriter(w, r); cw != nil {
		defer cw.Close()
		w = cw
	}
	rt.proxy.ServeHTTP(w, r)
}

// rewrite builds the upstream request (the upstream's address is set per
// try, in RoundTrip).
func (rt *route) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	rec := recordOf(in.Context())
	out.URL.Scheme = "http"
	out.URL.Host = "upstream.invalid"
	out.Host = in.Host
	if rt.strip && rt.prefix != "" {
		out.URL.Path = stripPath(in.URL.Path, rt.prefix)
		if raw := in.URL.RawPath; raw != "" && strings.HasPrefix(raw, rt.prefix) {
			out.URL.RawPath = stripPath(raw, rt.prefix)
		} else {
			out.URL.RawPath = ""
		}
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	client := rec.client
	if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		out.Header.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+client)
	} else {
		out.Header.Set("X-Forwarded-For", client)
	}
	out.Header.Set("X-Forwarded-Host", in.Host)
	out.Header.Set("X-Forwarded-Proto", proto)
	fwd := forwardedElement(client, in.Host, proto)
	if prior := in.Header.Values("Forwarded"); len(prior) > 0 {
		fwd = strings.Join(prior, ", ") + ", " + fwd
	}
	out.Header.Set("Forwarded", fwd)
	out.Header.Set("X-Request-Id", rec.reqID)
	injectTrace(in, out)
	rt.headerUp.apply(out.Header)
	if h := out.Header.Get("Host"); h != "" {
		out.Host = h
		out.Header.Del("Host")
	}
}

// forwardedElement is one RFC 7239 element.
func forwardedElement(client, host, proto string) string {
	var b strings.Builder
	b.WriteString("for=")
	if strings.Contains(client, ":") {
		b.WriteString(`"[` + client + `]"`)
	} else {
		b.WriteString(client)
	}
	b.WriteString(";host=")
	b.WriteString(strconv.Quote(host))
	b.WriteString(";proto=")
	b.WriteString(proto)
	return b.String()
}

func (rt *route) modifyResponse(resp *http.Response) error {
	rec := recordOf(resp.Request.Context())
	resp.Header.Del("X-Request-Id") // ours is set already
	rt.headerDown.apply(resp.Header)
	if rec.corsOrigin != "" {
		rt.cors.simple(resp.Header, rec.corsOrigin)
	}
	return nil
}

func (rt *route) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	rec := recordOf(r.Context())
	rec.err = err
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		w.Header().Set("Connection", "close")
		plain(w, http.StatusRequestEntityTooLarge, "request body too large")
	case errors.Is(err, errNoUpstream):
		w.Header().Set("Retry-After", "5")
		plain(w, http.StatusServiceUnavailable, "no healthy upstream for this route")
	case errors.Is(err, errUpstreamTimeout):
		plain(w, http.StatusGatewayTimeout, "upstream did not answer in time")
	case r.Context().Err() != nil:
		w.WriteHeader(499) // the client went away; nobody reads this
	default:
		plain(w, http.StatusBadGateway, "upstream unreachable")
	}
}

// idempotent methods may be tried again on another upstream.
func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// RoundTrip sends req to an upstream the policy picks, and, for an
// idempotent request without a body, to another upstream when the try
// failed before any response came back (nginx's proxy_next_upstream error:
// a failed dial, a connection reset or closed, as a relay does when its
// task just died; HTTP lets a client repeat an idempotent request), up to
// retries more times. A timeout is not retried: the upstream may still be
// working on it. When the
// request's table has no other upstream left, a retry looks at the
// route's newest version: during a rolling update, the upstream that just
// went away is replaced there.
func (rt *route) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recordOf(req.Context())
	canRetry := idempotent(req.Method) && (req.Body == nil || req.Body == http.NoBody)
	key := ""
	switch rt.kind {
	case balance.IPHash:
		key = rec.client
	case balance.HashHeader:
		key = req.Header.Get(rt.hashHeader)
	}
	var failed []string // addresses tried
	cur := rt
	now := time.Now()
	breq := &balance.Request{Key: key, Usable: func(i int) bool {
		return cur.states[i].Usable(now) && !slices.Contains(failed, cur.ups[i].Key)
	}}
	var lastErr error
	for attempt := 0; ; attempt++ {
		i := cur.policy.Select(cur.ups, breq)
		if i < 0 && lastErr != nil {
			if nr := rt.s.table.Load().routes[rt.name]; nr != nil && nr != cur {
				cur = nr
				i = cur.policy.Select(cur.ups, breq)
			}
		}
		if i < 0 {
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, errNoUpstream
		}
		resp, err := cur.try(req, i)
		rec.upstream, rec.upstreamNode = cur.ups[i].Key, cur.upNodes[i]
		if err == nil {
			return resp, nil
		}
		failed = append(failed, cur.ups[i].Key)
		lastErr = err
		if !canRetry || attempt >= rt.retries || req.Context().Err() != nil || errors.Is(err, errUpstreamTimeout) {
			return nil, err
		}
		rt.s.log.Debug("edge: retrying on another upstream", "route", rt.name, "upstream", cur.ups[i].Key, "err", err)
		now = time.Now()
	}
}

// try sends req to upstream i.
func (rt *route) try(req *http.Request, i int) (*http.Response, error) {
	up := &rt.ups[i]
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(rt.timeout, func() { cancel(errUpstreamTimeout) })
	out := req.WithContext(ctx) // req is ReverseProxy's own copy: its URL may change per try
	out.URL.Host = up.Key
	up.InFlight.Add(1)
	resp, err := rt.s.transport.RoundTrip(out)
	timer.Stop()
	if err != nil {
		up.InFlight.Add(-1)
		timedOut := errors.Is(context.Cause(ctx), errUpstreamTimeout)
		cancel(nil)
		var mbe *http.MaxBytesError
		switch {
		case timedOut:
			rt.states[i].Failure(time.Now())
			return nil, errUpstreamTimeout
		case errors.As(err, &mbe), req.Context().Err() != nil:
			// the client's doing, not the upstream's
		default:
			rt.states[i].Failure(time.Now())
		}
		return nil, err
	}
	rt.states[i].Success()
	done := func() {
		up.InFlight.Add(-1)
		cancel(nil)
	}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
		resp.Body = &upgradedBody{ReadWriteCloser: rwc, done: done}
	} else {
		resp.Body = &trackedBody{ReadCloser: resp.Body, done: done}
	}
	return resp, nil
}

// trackedBody counts a request in flight until its response body closes.
type trackedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// upgradedBody is trackedBody for a 101 response, whose body is the
// connection (ReverseProxy needs it writable).
type upgradedBody struct {
	io.ReadWriteCloser
	once sync.Once
	done func()
}

func (b *upgradedBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.once.Do(b.done)
	return err
}

// stripPrefix returns r with prefix removed from its path (for sites).
func stripPrefix(r *http.Request, prefix string) *http.Request {
	if prefix == "" {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path = stripPath(r.URL.Path, prefix)
	if u.RawPath != "" && strings.HasPrefix(u.RawPath, prefix) {
		u.RawPath = stripPath(u.RawPath, prefix)
	} else {
		u.RawPath = ""
	}
	r2.URL = &u
	return r2
}

func stripPath(p, prefix string) string {
	p = strings.TrimPrefix(p, prefix)
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return p
}

// cleanPath resolves dot segments and doubled slashes, keeping a
// trailing slash; changed is false (and nothing allocated) for a path
// that is clean already.
func cleanPath(p string) (string, bool) {
	if p == "" {
		return "/", true
	}
	if p[0] == '/' && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p, false
	}
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c, c != p
}

// plain answers with a short text body.
func plain(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

func clientIP(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
