package ctl

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// watchFlag is the --watch flag of node ls, service ls and ps.
var watchFlag = &cli.BoolFlag{Name: "watch", Aliases: []string{"w"},
	Usage: "after the list, print a row for every change until Ctrl-C (kubectl get -w); with -o json, every event as a JSON line"}

// watchEvent is one message of a watch stream, whatever its kind.
type watchEvent[T proto.Message] struct {
	event ccv1.WatchEvent
	id    string
	obj   T
	msg   proto.Message // the whole message, for -o json
}

// watchTable prints a watch stream as kubectl get -w does: the table of
// what matched when the stream opened, then a row per change, a removed
// object's last row with its state replaced by "removed". Later rows keep
// the columns' widths of the first table where they fit. With -o json it
// prints every message as a JSON line instead. It returns when the stream
// ends (the caller's Ctrl-C ends it through recv's context).
func watchTable[T proto.Message](c *cli.Context, header string, row func(obj T, removed bool) string, less func(a, b T) bool, recv func() (watchEvent[T], error)) error {
	out := c.App.Writer
	if jsonOut(c) {
		for {
			ev, err := recv()
			if err != nil {
				return endOfWatch(err)
			}
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev.msg)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(out, string(b)); err != nil {
				return err
			}
		}
	}
	last := map[string]T{}
	var initial []T
	var widths []int
	print := func(cells []string) error {
		var b strings.Builder
		for i, cell := range cells {
			b.WriteString(cell)
			if i == len(cells)-1 {
				break
			}
			w := 0
			if i < len(widths) {
				w = widths[i]
			}
			pad := max(w-utf8.RuneCountInString(cell), 0) + 2
			b.WriteString(strings.Repeat(" ", pad))
		}
		b.WriteByte('\n')
		_, err := io.WriteString(out, b.String())
		return err
	}
	synced := false
	for {
		ev, err := recv()
		if err != nil {
			return endOfWatch(err)
		}
		var cells []string
		switch ev.event {
		case ccv1.WatchEvent_WATCH_EVENT_PUT:
			last[ev.id] = ev.obj
			if !synced {
				initial = append(initial, ev.obj)
				continue
			}
			cells = strings.Split(row(ev.obj, false), "\t")
		case ccv1.WatchEvent_WATCH_EVENT_REMOVED:
			obj, ok := last[ev.id]
			if !ok {
				continue
			}
			delete(last, ev.id)
			if !synced {
				continue
			}
			cells = strings.Split(row(obj, true), "\t")
		case ccv1.WatchEvent_WATCH_EVENT_SYNCED:
			if synced {
				continue
			}
			synced = true
			sort.SliceStable(initial, func(i, j int) bool { return less(initial[i], initial[j]) })
			rows := [][]string{strings.Split(header, "\t")}
			for _, obj := range initial {
				rows = append(rows, strings.Split(row(obj, false), "\t"))
			}
			initial = nil
			for _, r := range rows {
				for i, cell := range r {
					if i >= len(widths) {
						widths = append(widths, 0)
					}
					widths[i] = max(widths[i], utf8.RuneCountInString(cell))
				}
			}
			for _, r := range rows {
				if err := print(r); err != nil {
					return err
				}
			}
			continue
		default:
			continue
		}
		if err := print(cells); err != nil {
			return err
		}
	}
}

// endOfWatch is what a watch returns when its stream ends: nil for an end
// the server chose (none does today), else the error.
func endOfWatch(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
