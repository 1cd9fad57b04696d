package uie2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// Timeouts: the machine may be slow and busy (a race-detector build, other
// tests beside), so they are generous; every wait is for a condition.
const (
	uiTimeout      = 90 * time.Second  // one condition in the page
	clusterTimeout = 120 * time.Second // a container, task or job reaching a state
	pollEvery      = 100 * time.Millisecond
)

// chromiumPath is Debian's chromium (or $CC_CHROMIUM); "" when missing.
func chromiumPath() string {
	if p := os.Getenv("CC_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// requireChromium skips the test when there is no browser to drive.
func requireChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the dashboard's browser tests are skipped")
	}
	p := chromiumPath()
	if p == "" {
		t.Skip("chromium is not installed: the dashboard's end-to-end tests need Debian's chromium (run `make prereqs`, or apt-get install chromium); skipped")
	}
	return p
}

// artifactsDir is where screenshots and figures go: $CC_ARTIFACTS, else
// test-artifacts/ui/ at the module root (git-ignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CC_ARTIFACTS")
	if dir == "" {
		root, err := testcluster.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "test-artifacts", "ui")
	} else {
		dir = filepath.Join(dir, "ui")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// record appends a line to results.txt in the artifacts dir and logs it.
func record(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	f, err := os.OpenFile(filepath.Join(artifactsDir(t), "results.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), t.Name(), line)
}

// spkiPin is the base64 SHA-256 of the public key the API port presents
// to a browser, for chromium's --ignore-certificate-errors-spki-list: the
// browser accepts that key (the test cluster's CA is not in its store) and
// no other.
func spkiPin(t *testing.T, srv *testcluster.Server) string {
	t.Helper()
	cfg := srv.TLSConfig().Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	conn, err := tls.Dial("tcp", srv.Addr(), cfg)
	if err != nil {
		t.Fatalf("TLS to the API port: %v", err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// browserFor starts a headless chromium for srv's API port, ended with the
// test.
func browserFor(t *testing.T, srv *testcluster.Server) context.Context {
	t.Helper()
	path := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// The tests run as root, where chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("ignore-certificate-errors-spki-list", spkiPin(t, srv)),
		chromedp.Flag("lang", "en-US"),
	)
	if n := newBrowserNetwork(t); n != nil {
		n.forward(t, srv.Addr())
		opts = append(opts, n.exec())
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(func(string, ...any) {}), chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// Start it now, so that a browser that cannot start fails here.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	return bctx
}

// tab is one browser tab on the dashboard of a cluster.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string // https://host:port
	name string
	seq  *atomic.Int64 // for the marks of found elements
}

// in is the tab used by the test t (a subtest fails itself, not its parent).
func (p *tab) in(t *testing.T) *tab {
	c := *p
	c.t = t
	return &c
}

// pagePrelude is run in every document before the app: it keeps the
// Content-Security-Policy violations the page meets, and answers the
// app's confirmation dialogs with OK as a user would.
const pagePrelude = `
window.__e2eCSP = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__e2eCSP.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' at ' + (e.sourceFile || '') + ':' + e.lineNumber);
});
window.confirm = () => true;
`

// newTab opens a tab in the browser of parent (its own sessionStorage); the
// requests the browser fails in it are logged.
func newTab(t *testing.T, parent context.Context, base, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	p := &tab{t: t, ctx: ctx, base: base, name: name, seq: new(atomic.Int64)}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pagePrelude}); err != nil {
		t.Fatalf("tab %s: %v", name, err)
	}
	p.logFailedRequests()
	return p
}

// logFailedRequests logs, until the test ends, each request of the tab that
// fails in the browser (not one it cancels): the method, the URL and the
// browser's error text (net::ERR_...), which the page itself cannot tell.
func (p *tab) logFailedRequests() {
	t := p.t
	ctx, cancel := context.WithCancel(p.ctx)
	var mu sync.Mutex
	urls := map[network.RequestID]string{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range chromedp.Events(ctx, network.RequestWillBeSent) {
			if err != nil {
				return
			}
			mu.Lock()
			urls[ev.RequestID] = ev.Request.Method + " " + ev.Request.URL
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range chromedp.Events(ctx, network.LoadingFailed) {
			if err != nil {
				return
			}
			if ev.Canceled {
				continue
			}
			mu.Lock()
			what := urls[ev.RequestID]
			mu.Unlock()
			if what == "" {
				what = "request " + string(ev.RequestID)
			}
			t.Logf("tab %s: %s failed in the browser: %s %s", p.name, what, ev.ErrorText, ev.BlockedReason)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// do runs actions in the tab, failing the test with a screenshot on error.
func (p *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression (promises awaited) into out.
func (p *tab) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, uiTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(v, out)
}

// mustEval is eval failing the test.
func (p *tab) mustEval(expr string, out any) {
	p.t.Helper()
	if err := p.eval(expr, out); err != nil {
		p.fail("evaluate %.80q: %v", expr, err)
	}
}

// waitFor polls the JavaScript expression (a boolean) until it is true,
// across navigations, failing the test with a screenshot after timeout.
func (p *tab) waitFor(what, expr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		var ok bool
		err := p.eval("!!("+expr+")", &ok)
		if err == nil && ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			p.fail("waited %s for %s (last error: %v); the page says: %s", timeout, what, last, p.pageText())
		}
		time.Sleep(pollEvery)
	}
}

// pageText is the start of the page's visible text, for failure messages.
func (p *tab) pageText() string {
	var s string
	if err := p.eval(`(document.querySelector('main') || document.body || {innerText: ''}).innerText`, &s); err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return strconv.Quote(s)
}

// fail takes a screenshot of the tab and fails the test.
func (p *tab) fail(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if shot := p.screenshot("failure-" + sanitize(p.t.Name())); shot != "" {
		msg += "\n  screenshot: " + shot
	}
	p.t.Fatalf("tab %s: %s", p.name, msg)
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, s)
}

// screenshot writes a PNG of the whole page under the artifacts dir and
// returns its path ("" when it could not).
func (p *tab) screenshot(name string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(artifactsDir(p.t), name+".png")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	return path
}

// openAttempts bounds the loads of one page by open.
const openAttempts = 4

// open navigates to path under the dashboard (a full page load). A load
// the browser fails with a network error (net::ERR_..., such as
// ERR_NETWORK_CHANGED when an agent adds its bridges to the host) is tried
// again, openAttempts times in all, and logged; other errors fail at once.
func (p *tab) open(path string) {
	p.t.Helper()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(p.ctx, uiTimeout)
		err := chromedp.Do(ctx, chromedp.Navigate(p.base+path))
		cancel()
		if err == nil {
			return
		}
		var load *chromedp.LoadError
		if attempt == openAttempts || !errors.As(err, &load) || !strings.HasPrefix(load.ErrorText, "net::") || p.ctx.Err() != nil {
			p.fail("open %s (attempt %d of %d): %v", path, attempt, openAttempts, err)
		}
		p.t.Logf("tab %s: open %s: %v (attempt %d of %d); loading it again", p.name, path, err, attempt, openAttempts)
		time.Sleep(time.Duration(attempt) * 250 * time.Millisecond)
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// findJS is a function that finds an element and marks it with
// data-e2e=<mark>: by its label's text (a form control), or by its role
// and accessible text (a button or link), or by CSS, within an optional
// container (CSS).
const findJS = `(kind, name, within, mark) => {
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const root = within ? document.querySelector(within) : document;
  if (!root) return false;
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  let found = null;
  if (kind === 'label') {
    for (const l of root.querySelectorAll('label')) {
      const text = norm(l.textContent);
      if (text === name || text.startsWith(name + ' ') || text.startsWith(name + ':')) {
        const c = l.control || l.querySelector('input,select,textarea');
        if (c) { found = c; break; }
      }
    }
    if (!found) found = root.querySelector('[aria-label="' + name + '"]');
  } else if (kind === 'button' || kind === 'link') {
    const sel = kind === 'button' ? 'button,[role=button],input[type=submit]' : 'a';
    for (const el of root.querySelectorAll(sel)) {
      if (!visible(el)) continue;
      const text = norm(el.getAttribute('aria-label')) || norm(el.textContent) || norm(el.value);
      if (text === name || norm(el.textContent) === name) { found = el; break; }
    }
  } else {
    found = root.querySelector(name);
  }
  if (!found) return false;
  found.setAttribute('data-e2e', mark);
  return true;
}`

// find waits for an element (see findJS) and returns a CSS selector for it.
func (p *tab) find(kind, name, within string) chromedp.CSS {
	p.t.Helper()
	mark := fmt.Sprintf("e%d", p.seq.Add(1))
	p.waitFor(fmt.Sprintf("%s %q", kind, name),
		fmt.Sprintf("(%s)(%s, %s, %s, %s)", findJS, jsString(kind), jsString(name), jsString(within), jsString(mark)), uiTimeout)
	return chromedp.CSS(`[data-e2e="` + mark + `"]`)
}

// fill sets the value of the form control labelled label (within a
// container), as typing would for React.
func (p *tab) fill(within, label, value string) {
	p.t.Helper()
	p.setValue(p.find("label", label, within), fmt.Sprintf("field %q", label), value)
}

// setValue sets the value of the input, textarea or select at sel as
// typing would for React (through the prototype's value setter, then input
// and change events); what names it in a failure.
func (p *tab) setValue(sel chromedp.CSS, what, value string) {
	p.t.Helper()
	expr := fmt.Sprintf(`(() => {
  const el = document.querySelector(%s);
  const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : el instanceof HTMLSelectElement ? HTMLSelectElement.prototype : HTMLInputElement.prototype;
  Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, %s);
  el.dispatchEvent(new Event('input', { bubbles: true }));
  el.dispatchEvent(new Event('change', { bubbles: true }));
  return el.value;
})()`, jsString(string(sel)), jsString(value))
	var got string
	p.mustEval(expr, &got)
	if got != value {
		p.fail("%s holds %q after fill, want %q", what, got, value)
	}
}

// click clicks the button or link named name (within a container) with
// the mouse.
func (p *tab) click(kind, name, within string) {
	p.t.Helper()
	deadline := time.Now().Add(uiTimeout)
	for {
		// A node the app replaced between the find and the click is
		// never clicked: find it again.
		sel := p.find(kind, name, within)
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(sel))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || p.ctx.Err() != nil {
			p.fail("click %s %q: %v", kind, name, err)
		}
	}
}

// testID is a CSS selector for a data-testid.
func testID(id string) string { return `[data-testid="` + id + `"]` }

// signIn signs the tab in with token from the sign-in page and waits for
// the signed-in layout.
func (p *tab) signIn(token string) {
	p.t.Helper()
	p.open("/ui/signin")
	p.fill("", "API token", token)
	p.click("button", "Sign in", "")
	p.waitFor("the signed-in layout (a Sign out button)", `[...document.querySelectorAll('button')].some((b) => b.textContent.trim() === 'Sign out')`, uiTimeout)
	var stored string
	p.mustEval(`sessionStorage.getItem('cc.token') || ''`, &stored)
	if stored != token {
		p.fail("sessionStorage['cc.token'] does not hold the token after sign-in")
	}
	var local int
	p.mustEval(`Object.keys(localStorage).filter((k) => (localStorage.getItem(k) || '').includes(`+jsString(token)+`)).length`, &local)
	if local != 0 || strings.Contains(p.location(), token) {
		p.fail("the token is in localStorage or the URL")
	}
}

// location is the tab's URL.
func (p *tab) location() string {
	var s string
	_ = p.eval(`location.href`, &s)
	return s
}

// nav clicks the main navigation's link named name and waits for the
// page's h1 to say it.
func (p *tab) nav(name string) {
	p.t.Helper()
	p.click("link", name, `nav[aria-label="Main"]`)
	p.waitHeading(name)
}

// waitHeading waits for the page's one h1 to start with text.
func (p *tab) waitHeading(text string) {
	p.t.Helper()
	p.waitFor("the heading "+strconv.Quote(text), `(() => { const h = document.querySelectorAll('h1'); return h.length === 1 && h[0].textContent.trim().startsWith(`+jsString(text)+`); })()`, uiTimeout)
}

// cspViolations returns (and clears) the CSP violations the page met.
func (p *tab) cspViolations() []string {
	var v []string
	_ = p.eval(`(() => { const v = window.__e2eCSP || []; window.__e2eCSP = []; return v; })()`, &v)
	return v
}

// requireNoCSPViolations fails when the page broke its CSP (an inline
// style or script the strict policy refuses).
func (p *tab) requireNoCSPViolations(where string) {
	p.t.Helper()
	if v := p.cspViolations(); len(v) > 0 {
		p.t.Errorf("%s: the page broke its Content-Security-Policy: %s", where, strings.Join(v, "; "))
	}
}

// download arranges for downloads of this browser to go to dir and
// returns a function that waits for the next completed download and
// returns its bytes and suggested name.
func (p *tab) expectDownload(dir string) func() (string, []byte) {
	p.t.Helper()
	events := chromedp.BrowserEvents(p.ctx, browser.DownloadProgress)
	begins := chromedp.BrowserEvents(p.ctx, browser.DownloadWillBegin)
	yes := true
	if _, err := chromedp.CallBrowser(p.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes}); err != nil {
		p.fail("set the download behaviour: %v", err)
	}
	names := make(chan string, 4)
	ctx, cancel := context.WithCancel(p.ctx)
	p.t.Cleanup(cancel)
	go func() {
		for ev, err := range begins {
			if err != nil || ctx.Err() != nil {
				return
			}
			select {
			case names <- ev.GUID + "\x00" + ev.SuggestedFilename:
			default:
			}
		}
	}()
	return func() (string, []byte) {
		p.t.Helper()
		var guid, name string
		select {
		case s := <-names:
			guid, name, _ = strings.Cut(s, "\x00")
		case <-time.After(uiTimeout):
			p.fail("no download began")
		}
		deadline := time.After(uiTimeout)
		done := make(chan string, 1)
		go func() {
			for ev, err := range events {
				if err != nil {
					return
				}
				if ev.GUID == guid && ev.State == browser.DownloadProgressStateCompleted {
					done <- ev.FilePath
					return
				}
			}
		}()
		select {
		case <-done:
		case <-deadline:
			p.fail("the download of %s did not complete", name)
		}
		b, err := os.ReadFile(filepath.Join(dir, guid))
		if err != nil {
			p.fail("read the download of %s: %v", name, err)
		}
		return name, b
	}
}

// apiGet is a GET of the API with token, for checks beside the browser.
func apiGet(t *testing.T, srv *testcluster.Server, token, path string, out any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, b)
		}
	}
	return res.StatusCode
}

// dashboardBuilt says whether the server serves the built app (not the
// page that says how to build it).
func dashboardBuilt(t *testing.T, srv *testcluster.Server) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+"/ui/", nil)
	res, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET /ui/: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return !strings.Contains(string(b), "The dashboard is not built")
}
