package runtime

import (
	"context"
	"strconv"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
)

// Events delivers the id of a container whose task exited or was OOM-killed,
// from containerd's event stream filtered to the runtime's namespace, so the
// agent re-lists promptly. An OOM kill is also remembered under StateDir for
// List. When the stream breaks, Events subscribes again and then delivers
// "" (the empty id), which means "events may have been missed: re-list
// everything". The channel is closed when ctx ends.
func (r *Runtime) Events(ctx context.Context) <-chan string {
	out := make(chan string, 64)
	go func() {
		defer close(out)
		send := func(id string) bool {
			select {
			case out <- id:
				return true
			case <-ctx.Done():
				return false
			}
		}
		ns := strconv.Quote(r.cfg.Namespace)
		filters := []string{
			"namespace==" + ns + `,topic=="/tasks/exit"`,
			"namespace==" + ns + `,topic=="/tasks/oom"`,
		}
		backoff := 100 * time.Millisecond
		first := true
		for ctx.Err() == nil {
			sctx, cancel := context.WithCancel(r.withNS(ctx))
			envs, errs := r.client.Subscribe(sctx, filters...)
			if !first && !send("") {
				cancel()
				return
			}
			first = false
		recv:
			for {
				select {
				case <-ctx.Done():
					cancel()
					return
				case err := <-errs:
					if ctx.Err() == nil {
						r.log.Warn("containerd event stream broke; subscribing again", "err", err, "in", backoff)
					}
					break recv
				case env, ok := <-envs:
					if !ok {
						break recv
					}
					backoff = 100 * time.Millisecond
					if env.Event == nil {
						continue
					}
					ev, err := typeurl.UnmarshalAny(env.Event)
					if err != nil {
						continue
					}
					var id string
					switch e := ev.(type) {
					case *apievents.TaskExit:
						if e.ID != e.ContainerID {
							continue // an exec'd process, not the container's
						}
						id = e.ContainerID
					case *apievents.TaskOOM:
						id = e.ContainerID
						if validID(id) == nil {
							r.markOOM(id)
						}
					default:
						continue
					}
					if !send(id) {
						cancel()
						return
					}
				}
			}
			cancel()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if backoff < 5*time.Second {
				backoff *= 2
			}
		}
	}()
	return out
}
