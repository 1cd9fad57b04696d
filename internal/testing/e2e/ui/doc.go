// Package uie2e holds the web dashboard's end-to-end tests: Debian's
// chromium, headless and driven by chromedp, against an in-process cluster
// (testcluster) with one agent on real containerd, using the dashboard
// embedded in the control plane (make ui builds it first). They skip, saying
// why, when chromium is missing or the dashboard is not built. Screenshots
// and the figures go to $CC_ARTIFACTS, or test-artifacts/ui/ in the checkout.
package uie2e
