package uie2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// e2eImage is the busybox test image the flows run, loaded before them.
const e2eImage = "cc-ui-e2e:latest"

// mainPages are the links of the main navigation, each a page whose h1
// names it.
var mainPages = []string{"Overview", "Nodes", "Services", "Containers", "Jobs", "Queues", "Images", "Routes", "Sites", "Certificates", "Volumes", "Tokens", "Audit", "Settings"}

// TestDashboard drives the dashboard in headless chromium as a user would,
// against a cluster with one agent on real containerd: sign in with the
// admin token, run a container and read its logs, create a service and
// scale it from 1 to 3, submit a job with an input and download its
// output, deploy a site, revoke a token and see its session signed out;
// then an axe-core scan and a screenshot of every page.
func TestDashboard(t *testing.T) {
	requireChromium(t)
	testcluster.RequireContainerd(t)
	srv := testcluster.Start(t)
	if !dashboardBuilt(t, srv) {
		t.Skip("the dashboard is not built into this test binary: run `make ui` first (make test does); skipped")
	}
	cl := srv.Client()
	cl.LoadBusybox(t, e2eImage)
	srv.StartAgent("ui-node")
	waitNodeReady(t, srv)

	b := browserFor(t, srv)
	admin := newTab(t, b, srv.URL(), "admin")
	admin.signIn(srv.Token)
	admin.requireNoCSPViolations("sign-in")
	details := map[string]string{} // page name → a detail page's path

	t.Run("Overview", func(t *testing.T) {
		a := admin.in(t)
		a.nav("Overview")
		a.waitFor("the overview to show one node ready", `[...document.querySelectorAll('main section')].some((s) => (s.querySelector('h2') || {textContent: ''}).textContent.trim() === 'Nodes' && /\b1\s+ready\b/.test(s.innerText))`, clusterTimeout)
		record(t, "screenshot: %s", a.screenshot("overview"))
	})

	t.Run("RunContainerAndReadLogs", func(t *testing.T) {
		a := admin.in(t)
		a.nav("Containers")
		form := testID("run-form")
		a.fill(form, "Image", e2eImage)
		a.fill(form, "Command", `/bin/busybox sh -c 'echo hello-from-the-dashboard; sleep 3600'`)
		a.fill(form, "Name", "ui-hello")
		a.click("button", "Run", form)
		a.waitFor("the container's page", `location.pathname.startsWith('/ui/containers/') && location.pathname.length > '/ui/containers/'.length`, uiTimeout)
		details["Container"] = strings.TrimPrefix(a.location(), srv.URL())
		// The page opens the log as soon as it shows the container, maybe
		// before it runs: the app opens it again once it runs.
		a.waitFor("its log line in the followed logs", `(document.querySelector('[data-testid="logs"]') || {textContent: ''}).textContent.includes('hello-from-the-dashboard')`, clusterTimeout)
		record(t, "screenshot: %s", a.screenshot("container-logs"))
	})

	t.Run("ExecInTerminal", func(t *testing.T) {
		a := admin.in(t)
		if details["Container"] == "" {
			t.Skip("no container (RunContainerAndReadLogs failed)")
		}
		a.open(details["Container"] + "/exec")
		a.fill("main", "Command", "/bin/busybox sh")
		a.click("button", "Open terminal", "main")
		a.waitFor("the terminal to connect", `/Connected/.test(document.querySelector('main').innerText) && !!document.querySelector('.xterm')`, clusterTimeout)
		// Keys go to the terminal, which has the focus; the shell's answer
		// comes back over the WebSocket (its token was a subprotocol).
		if _, err := chromedp.Call(a.ctx, input.InsertText, input.InsertTextParams{Text: "echo exec-$((6*7))"}); err != nil {
			t.Fatalf("type a command: %v", err)
		}
		a.do("press Enter", chromedp.KeyEvent(kb.Enter))
		a.waitFor("the command's output in the terminal", `(document.querySelector('.xterm-rows') || document.querySelector('.xterm') || {textContent: ''}).textContent.includes('exec-42')`, clusterTimeout)
		a.requireNoCSPViolations("exec")
		record(t, "screenshot: %s", a.screenshot("exec-terminal"))
	})

	t.Run("CreateAndScaleService", func(t *testing.T) {
		a := admin.in(t)
		a.nav("Services")
		form := testID("service-form")
		a.fill(form, "Name", "ui-web")
		a.fill(form, "Image", e2eImage)
		a.fill(form, "Command", "/bin/busybox sleep 3600")
		a.fill(form, "Replicas", "1")
		a.click("button", "Create", form)
		a.waitFor("the service's page", `location.pathname.startsWith('/ui/services/') && location.pathname.length > '/ui/services/'.length`, uiTimeout)
		details["Service"] = strings.TrimPrefix(a.location(), srv.URL())
		a.waitFor("one task running", runningTasksJS+` === 1`, clusterTimeout)
		a.fillCSS(testID("scale-input"), "3")
		a.click("button", "Scale", "")
		a.waitFor("three tasks running", runningTasksJS+` === 3`, clusterTimeout)
		record(t, "screenshot: %s", a.screenshot("service-scaled"))
	})

	t.Run("JobWithInputAndOutput", func(t *testing.T) {
		a := admin.in(t)
		dir := t.TempDir()
		// A plain file, as a user picks one: the form packs it, as
		// ccctl's --input does, to /input/in.txt.
		input := filepath.Join(dir, "in.txt")
		if err := os.WriteFile(input, []byte("input-content-42\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		a.nav("Jobs")
		form := testID("job-form")
		a.fill(form, "Image", e2eImage)
		a.fill(form, "Command", `/bin/busybox sh -c 'cat /input/in.txt > /output/a.txt'`)
		a.do("choose the input", chromedp.SetUploadFiles(a.find("label", "Input", form), []string{input}))
		a.click("button", "Submit", form)
		a.waitFor("the job's page", `location.pathname.startsWith('/ui/jobs/') && location.pathname.length > '/ui/jobs/'.length`, uiTimeout)
		details["Job"] = strings.TrimPrefix(a.location(), srv.URL())
		a.waitFor("the live state to say succeeded", `/succeeded/i.test((document.querySelector('[data-testid="job-state"]') || {textContent: ''}).textContent)`, clusterTimeout)
		link := a.find("css", `[data-testid="output-file"]`, "")
		var text string
		a.mustEval(`document.querySelector('[data-testid="output-file"]').textContent.trim()`, &text)
		if text != "a.txt" {
			t.Errorf("the output browser lists %q, want a.txt", text)
		}
		next := a.expectDownload(t.TempDir())
		a.do("download a.txt", chromedp.Click(link))
		name, data := next()
		if name != "a.txt" || string(data) != "input-content-42\n" {
			t.Errorf("downloaded %q with %q, want a.txt with the input's content", name, data)
		}
		// The listing the output browser reads.
		var list struct {
			Digest string `json:"digest"`
			Files  []struct {
				Path string `json:"path"`
				Type string `json:"type"`
				Size int64  `json:"size"`
			} `json:"files"`
		}
		id := strings.TrimPrefix(details["Job"], "/ui/jobs/")
		if code := apiGet(t, srv, srv.Token, "/v1/jobs/"+id+"/output:list", &list); code != 200 || len(list.Files) != 1 || list.Files[0].Path != "a.txt" || list.Files[0].Type != "file" || list.Files[0].Size != 17 || !strings.HasPrefix(list.Digest, "sha256:") {
			t.Errorf("GET /v1/jobs/%s/output:list: %d %+v", id, code, list)
		}
		record(t, "screenshot: %s", a.screenshot("job-output"))
	})

	t.Run("DeploySite", func(t *testing.T) {
		a := admin.in(t)
		dir := t.TempDir()
		index := filepath.Join(dir, "index.html")
		if err := os.WriteFile(index, []byte("<!doctype html><title>docs</title><h1>Hello from the dashboard</h1>\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		a.nav("Sites")
		form := testID("site-form")
		a.fill(form, "Site name", "ui-docs")
		a.fill(form, "Hosts", "docs.ui.test")
		a.do("choose the files", chromedp.SetUploadFiles(a.find("label", "Or files", form), []string{index}))
		a.click("button", "Deploy", form)
		a.waitFor("the deploy to be done", `/Deployed ui-docs version 1/.test(document.querySelector('main').innerText)`, clusterTimeout)
		var site struct {
			Site struct {
				Current int `json:"current"`
				Spec    struct {
					Hosts []string `json:"hosts"`
				} `json:"spec"`
			} `json:"site"`
		}
		if code := apiGet(t, srv, srv.Token, "/v1/sites/ui-docs", &site); code != 200 || site.Site.Current != 1 || len(site.Site.Spec.Hosts) != 1 || site.Site.Spec.Hosts[0] != "docs.ui.test" {
			t.Errorf("GET /v1/sites/ui-docs: %d %+v", code, site)
		}
		record(t, "screenshot: %s", a.screenshot("site-deployed"))
	})

	t.Run("RevokedTokenIsSignedOut", func(t *testing.T) {
		a := admin.in(t)
		a.nav("Tokens")
		form := testID("token-form")
		a.fill(form, "Role", "ROLE_VIEWER")
		a.fill(form, "Description", "revoked by the e2e test")
		a.click("button", "Create token", form)
		a.waitFor("the new token's secret", `!!document.querySelector('#token-secret, [id*="secret"] input, input[readonly]') && (document.querySelector('input[readonly]').value || '').startsWith('CCAPI-')`, uiTimeout)
		var secret string
		a.mustEval(`document.querySelector('input[readonly]').value`, &secret)
		id := tokenID(secret)

		v := newTab(t, b, srv.URL(), "viewer")
		v.signIn(secret)
		v.nav("Nodes")

		a.click("button", "Done", form)
		a.click("button", "Revoke token "+id, "")
		a.waitFor("the token to show revoked", `[...document.querySelectorAll('tr')].some((r) => r.textContent.includes(`+jsString(id)+`) && /revoked/i.test(r.textContent))`, uiTimeout)

		// The viewer's next calls are refused: the app signs out and says why.
		deadline := time.Now().Add(uiTimeout)
		for i := 0; ; i++ {
			var out bool
			_ = v.eval(`location.pathname === '/ui/signin'`, &out)
			if out {
				break
			}
			if time.Now().After(deadline) {
				v.fail("the viewer's tab was not signed out after its token was revoked")
			}
			// Each page asks the API again. (A click in the page: the
			// link goes away when the app signs out meanwhile.)
			page := []string{"Services", "Containers", "Nodes", "Jobs"}[i%4]
			_ = v.eval(fmt.Sprintf(`(() => { const a = [...document.querySelectorAll('nav[aria-label="Main"] a')].find((a) => a.textContent.trim() === %s); if (a) a.click(); return !!a; })()`, jsString(page)), nil)
			waitQuiet(v)
		}
		v.waitFor("the sign-in page to say the token was refused", `/refused/i.test(document.body.innerText)`, uiTimeout)
		var stored string
		v.mustEval(`sessionStorage.getItem('cc.token') || ''`, &stored)
		if stored != "" {
			t.Errorf("the revoked token is still in sessionStorage")
		}
		record(t, "screenshot: %s", v.screenshot("signed-out-after-revoke"))
	})

	t.Run("AccessibilityAndScreenshots", func(t *testing.T) {
		a := admin.in(t)
		axeSrc := axeSource(t)
		var summary []string
		scan := func(name string) {
			t.Helper()
			waitQuiet(a)
			shot := a.screenshot("page-" + strings.ToLower(name))
			if axeSrc == "" {
				summary = append(summary, fmt.Sprintf("%s: screenshot %s", name, shot))
				return
			}
			vs := runAxe(a, axeSrc)
			var bad []string
			counts := map[string]int{}
			for _, v := range vs {
				counts[v.Impact]++
				if v.Impact == "serious" || v.Impact == "critical" {
					bad = append(bad, fmt.Sprintf("%s (%s, %d nodes: %s) %s", v.ID, v.Impact, v.Nodes, strings.Join(v.Targets, " | "), v.Help))
				}
			}
			if len(bad) > 0 {
				t.Errorf("axe on %s: %d serious or critical violations:\n  %s", name, len(bad), strings.Join(bad, "\n  "))
			}
			summary = append(summary, fmt.Sprintf("%s: axe critical %d, serious %d, moderate %d, minor %d; screenshot %s", name, counts["critical"], counts["serious"], counts["moderate"], counts["minor"], shot))
			a.requireNoCSPViolations(name)
		}
		for _, name := range mainPages {
			a.nav(name)
			scan(name)
		}
		for _, d := range []string{"Container", "Service", "Job"} {
			if path := details[d]; path != "" {
				a.open(path)
				a.waitFor("the "+d+" page's heading", `document.querySelectorAll('h1').length === 1`, uiTimeout)
				scan(d)
			}
		}
		a.nav("Nodes")
		a.click("link", "ui-node", "main")
		a.waitFor("the node's page", `location.pathname.startsWith('/ui/nodes/') && document.querySelectorAll('h1').length === 1`, uiTimeout)
		scan("Node")

		// The dark theme (the system's preference), scanned again for
		// contrast; then a phone's width.
		if _, err := chromedp.Call(a.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
			t.Fatalf("prefer the dark colour scheme: %v", err)
		}
		for _, name := range []string{"Overview", "Jobs", "Services", "Tokens"} {
			a.nav(name)
			scan(name + "-dark")
		}
		a.do("a phone's screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
		for _, name := range []string{"Overview", "Jobs"} {
			a.open("/ui/" + map[string]string{"Overview": "", "Jobs": "jobs"}[name])
			a.waitHeading(name)
			waitQuiet(a)
			summary = append(summary, fmt.Sprintf("%s at 390 px (dark): screenshot %s", name, a.screenshot("phone-"+strings.ToLower(name))))
		}
		a.do("back to the desktop", chromedp.EmulateViewport(1280, 900))
		if _, err := chromedp.Call(a.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
			t.Fatalf("back to the light colour scheme: %v", err)
		}

		s := newTab(t, b, srv.URL(), "signed-out").in(t)
		s.open("/ui/signin")
		s.find("label", "API token", "")
		a2 := a
		a = s
		scan("Signin")
		a = a2
		if axeSrc == "" {
			summary = append(summary, "axe: not run (frontend/node_modules/axe-core is missing: run make ui)")
		}
		for _, line := range summary {
			record(t, "%s", line)
		}
	})
}

// fillCSS sets the value of the form control at the CSS selector.
func (p *tab) fillCSS(css, value string) {
	p.t.Helper()
	p.setValue(p.find("css", css, ""), css, value)
}

// waitQuiet waits until the page shows no loading status.
func waitQuiet(p *tab) {
	p.t.Helper()
	p.waitFor("the page to finish loading", `![...document.querySelectorAll('[role="status"]')].some((e) => /^Loading/.test(e.textContent.trim())) && !document.querySelector('[aria-busy="true"]')`, uiTimeout)
}

var tokenRE = regexp.MustCompile(`^CCAPI-1-([0-9a-f]+)-`)

// tokenID is the id in a bearer token.
func tokenID(secret string) string {
	m := tokenRE.FindStringSubmatch(secret)
	if m == nil {
		return ""
	}
	return m[1]
}

func waitNodeReady(t *testing.T, srv *testcluster.Server) {
	t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := srv.Client().Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
		cancel()
		if err == nil && len(r.Nodes) == 1 && r.Nodes[0].State == ccv1.NodeState_NODE_STATE_READY {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's node is not ready: %v %v", r, err)
		}
		time.Sleep(pollEvery)
	}
}
