package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// Purge removes everything in the runtime's containerd namespace, whoever
// created it (containers, their tasks, networks, snapshots and job
// directories, then job directories left without a container, then images),
// the namespace itself, the cgroups runc leaves for it and the job
// network's filter chains (jobnet.go). It is for tests
// and for taking a node out of service for good.
func (r *Runtime) Purge(ctx context.Context) error {
	nctx := r.withNS(ctx)
	var errs []error
	cs, err := r.client.Containers(nctx)
	if err != nil {
		return fmt.Errorf("runtime: purge: %w", err)
	}
	for _, c := range cs {
		if err := r.Remove(ctx, c.ID()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.purgeVolumes(); err != nil {
		errs = append(errs, err)
	}
	// Job directories of containers gone before (an agent crash).
	if err := r.cleanOrphanJobs(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := r.cleanOrphanDisks(ctx); err != nil {
		errs = append(errs, err)
	}
	r.images.clear()
	imgs, _ := r.client.ImageService().List(nctx)
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := r.client.ImageService().Delete(nctx, img.Name, opts...); err != nil {
			errs = append(errs, fmt.Errorf("delete image %s: %w", img.Name, err))
		}
	}
	if err := r.client.NamespaceService().Delete(namespaces.WithNamespace(ctx, r.cfg.Namespace), r.cfg.Namespace); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete namespace %s: %w", r.cfg.Namespace, err))
	}
	r.fwMu.Lock()
	fw := r.jobFW
	r.fwMu.Unlock()
	if err := fw.remove(); err != nil {
		errs = append(errs, err)
	}
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, c := range ctrls {
		p := filepath.Join("/sys/fs/cgroup", c.Name(), r.cfg.Namespace)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			err := os.Remove(p)
			if err == nil || os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}
