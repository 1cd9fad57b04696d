package ctl

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// humanSize prints a byte count in binary units: "512 B", "45.2 MiB".
func humanSize(n int64) string {
	if n < 1024 && n > -1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= 1024
		if (f < 1024 && f > -1024) || u == "TiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	panic("unreachable")
}

// ago prints how long before now t was, as docker does: "2 minutes ago".
func ago(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := now.Sub(t.AsTime())
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch hours := d.Hours(); {
	case d < time.Second:
		return "Less than a second ago"
	case d < time.Minute:
		return plural(int(d.Seconds()), "second")
	case d < 2*time.Minute:
		return "About a minute ago"
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute")
	case d < 90*time.Minute:
		return "About an hour ago"
	case hours < 48:
		return plural(int(hours+0.5), "hour")
	case hours < 24*14:
		return plural(int(hours/24), "day")
	case hours < 24*60:
		return plural(int(hours/24/7), "week")
	case hours < 24*365*2:
		return plural(int(hours/24/30), "month")
	default:
		return plural(int(hours/24/365), "year")
	}
}

// containerState prints a container's state for ps: "running",
// "running (healthy)", "exited (137, oom-killed)", "failed: <error>".
func containerState(c *ccv1.Container) string {
	st := c.GetStatus()
	switch s := st.GetState(); s {
	case ccv1.ContainerState_CONTAINER_STATE_UNSPECIFIED:
		return "unknown"
	case ccv1.ContainerState_CONTAINER_STATE_RUNNING:
		if c.GetDesired() == ccv1.DesiredState_DESIRED_STATE_STOPPED {
			return "stopping"
		}
		if h := st.GetHealth(); h != ccv1.HealthState_HEALTH_STATE_UNSPECIFIED {
			return "running (" + enumWord(h.String(), "HEALTH_STATE_") + ")"
		}
		return "running"
	case ccv1.ContainerState_CONTAINER_STATE_EXITED:
		if st.GetOomKilled() {
			return fmt.Sprintf("exited (%d, oom-killed)", st.GetExitCode())
		}
		return fmt.Sprintf("exited (%d)", st.GetExitCode())
	case ccv1.ContainerState_CONTAINER_STATE_FAILED:
		if msg := shorten(st.GetError(), 50); msg != "" {
			return "failed: " + msg
		}
		return "failed"
	default:
		return enumWord(s.String(), "CONTAINER_STATE_")
	}
}

// shorten makes s one line of at most max runes, ending in "…" when cut.
func shorten(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// shortID is the first 12 characters of an id, as docker prints them.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// shortDigest is the first 12 hex digits of "sha256:<hex>".
func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok {
		d = hex
	}
	return shortID(d)
}

// formatPorts prints published ports as "8080->80/tcp, 5353->53/udp".
func formatPorts(ports []*ccv1.PortMapping) string {
	var out []string
	for _, p := range ports {
		proto := p.GetProtocol()
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, fmt.Sprintf("%d->%d/%s", p.GetHostPort(), p.GetContainerPort(), proto))
	}
	return strings.Join(out, ", ")
}

// formatCPU prints thousandths of a core as cores: "0.5", "4".
func formatCPU(millis int64) string {
	if millis == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(millis)/1000, 'f', -1, 64)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
