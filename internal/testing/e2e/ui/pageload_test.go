package uie2e

import (
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// TestDashboardLoads opens /ui/ in chromium: the app's sign-in page when
// the dashboard is built, else the page that says how to build it; either
// way within the strict Content-Security-Policy.
func TestDashboardLoads(t *testing.T) {
	requireChromium(t)
	srv := testcluster.Start(t)
	built := dashboardBuilt(t, srv)
	p := newTab(t, browserFor(t, srv), srv.URL(), "main")
	p.open("/")
	if built {
		p.waitFor("the sign-in page", `location.pathname === '/ui/signin' && !!document.querySelector('input')`, uiTimeout)
		p.find("label", "API token", "")
		p.find("button", "Sign in", "")
		record(t, "screenshot of the sign-in page: %s", p.screenshot("signin"))
	} else {
		p.waitHeading("The dashboard is not built")
		var text string
		p.mustEval(`document.body.innerText`, &text)
		for _, want := range []string{"make ui", "make build"} {
			if !strings.Contains(text, want) {
				t.Errorf("the not-built page does not say %q", want)
			}
		}
		record(t, "the dashboard is not built (run make ui); screenshot of the page that says so: %s", p.screenshot("not-built"))
	}
	p.requireNoCSPViolations("/ui/")
}
