package ctl

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// A progress bar for uploads and downloads: one line on stderr, redrawn in
// place with \r at most ten times a second, ended with a newline. It has no
// dependencies; a terminal is told by isTerminal.

const barWidth = 30

// formatProgress is one line of a progress bar:
// "Loading  45.2 MiB / 120.0 MiB [=====>     ] 37%  12.3 MiB/s".
// total <= 0 is unknown and prints no bar; elapsed <= 0 prints no rate.
func formatProgress(label string, done, total int64, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %s", label, humanSize(done))
	if total > 0 {
		pct := min(done*100/total, 100)
		filled := int(min(done*barWidth/total, barWidth))
		bar := strings.Repeat("=", filled)
		if filled > 0 && filled < barWidth {
			bar = bar[:filled-1] + ">"
		}
		fmt.Fprintf(&b, " / %s [%-*s] %d%%", humanSize(total), barWidth, bar, pct)
	}
	if elapsed > 0 {
		fmt.Fprintf(&b, "  %s/s", humanSize(int64(float64(done)/elapsed.Seconds())))
	}
	return b.String()
}

// progress redraws a progress line on a terminal at most every interval.
// Its zero value with w nil draws nothing.
type progress struct {
	w            io.Writer
	label        string
	total, done  int64
	start, drawn time.Time
	width        int
	now          func() time.Time
}

const progressInterval = 100 * time.Millisecond

func newProgress(w io.Writer, label string, total int64) *progress {
	if !isTerminal(w) {
		w = nil
	}
	p := &progress{w: w, label: label, total: total, now: time.Now}
	p.start = p.now()
	return p
}

// Add counts n more bytes and redraws when the last draw is old enough.
func (p *progress) Add(n int) {
	p.done += int64(n)
	if p.w != nil && p.now().Sub(p.drawn) >= progressInterval {
		p.draw("")
	}
}

// Done draws the final line, once.
func (p *progress) Done() {
	if p.w != nil {
		p.draw("\n")
		p.w = nil
	}
}

func (p *progress) draw(end string) {
	now := p.now()
	p.drawn = now
	line := formatProgress(p.label, p.done, p.total, now.Sub(p.start))
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s%s", line, strings.Repeat(" ", pad), end)
}

// progressWriter counts what passes through it on a progress bar.
type progressWriter struct{ p *progress }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.Add(len(b))
	return len(b), nil
}

// progressFlags are --progress and --quiet of the commands that move data.
func progressFlags(quietUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "progress", Usage: "draw the progress bar on stderr even when it is not a terminal"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: quietUsage},
	}
}

// transferProgress is the progress bar of a transfer of total bytes (0:
// unknown): on stderr when it is a terminal or with --progress, never with
// --quiet.
func transferProgress(c *cli.Context, label string, total int64) *progress {
	p := newProgress(c.App.ErrWriter, label, total)
	switch {
	case c.Bool("quiet"):
		p.w = nil
	case c.Bool("progress"):
		p.w = c.App.ErrWriter
	}
	return p
}
