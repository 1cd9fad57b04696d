package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/agent/metrics"
)

// NormalizeRef turns an image reference into containerd's full name the way
// docker does: "cc-demo" is "docker.io/library/cc-demo:latest".
func NormalizeRef(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("runtime: image reference %q is not valid: %w", ref, err)
	}
	return named.String(), nil
}

// EnsureImage makes ref available and unpacked for the default snapshotter:
// if containerd already has it, done; else if open is not nil, the archive
// it returns (an OCI image layout or `docker save` tar) is imported; else ref
// is pulled from its registry with Config.Auth and Config.PlainHTTP.
//
// An imported archive must name ref (io.containerd.image.name or
// org.opencontainers.image.ref.name annotations, or docker's RepoTags);
// when it holds a single image under another name, that image is also
// named ref.
func (r *Runtime) EnsureImage(ctx context.Context, ref string, open func(context.Context) (io.ReadCloser, error)) (err error) {
	name, err := NormalizeRef(ref)
	if err != nil {
		return err
	}
	ctx, end := r.span(r.withNS(ctx), "runtime.ensure_image", attribute.String("cc.image", name))
	defer func() { end(err) }()
	rec, err := r.client.ImageService().Get(ctx, name)
	switch {
	case err == nil:
		_, err := r.resolveImage(ctx, rec)
		return err
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("runtime: look up image %s: %w", name, err)
	}

	start := time.Now()
	if open == nil {
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("cc.image.source", "pull"))
		err := r.pull(ctx, name)
		r.cfg.Metrics.ImagePulled(metrics.SourceRegistry, err == nil, time.Since(start))
		return err
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("cc.image.source", "blob"))
	err = r.importArchive(ctx, name, open)
	r.cfg.Metrics.ImagePulled(metrics.SourceCluster, err == nil, time.Since(start))
	return err
}

// importArchive imports the archive open returns as the image name.
func (r *Runtime) importArchive(ctx context.Context, name string, open func(context.Context) (io.ReadCloser, error)) error {
	rc, err := open(ctx)
	if err != nil {
		return fmt.Errorf("runtime: open archive of image %s: %w", name, err)
	}
	defer rc.Close()
	repo := name
	if named, err := reference.ParseNormalizedNamed(name); err == nil {
		repo = named.Name()
	}
	imgs, err := r.client.Import(ctx, rc, containerd.WithImageRefTranslator(func(s string) string {
		// A bare ref.name is a tag of ref's repository.
		if !strings.ContainsAny(s, "/:@") {
			return repo + ":" + s
		}
		if n, err := NormalizeRef(s); err == nil {
			return n
		}
		return s
	}))
	if err != nil {
		return fmt.Errorf("runtime: import image archive for %s: %w (is it an OCI layout or docker-save tar?)", name, err)
	}
	var found *images.Image
	var names []string
	for i := range imgs {
		names = append(names, imgs[i].Name)
		if imgs[i].Name == name {
			found = &imgs[i]
		}
	}
	if found == nil {
		if len(imgs) != 1 {
			return fmt.Errorf("runtime: the archive for %s holds images %v, none of them named %s; load it under one of those names", name, names, name)
		}
		alias := images.Image{Name: name, Target: imgs[0].Target, Labels: imgs[0].Labels}
		created, err := r.client.ImageService().Create(ctx, alias)
		if errdefs.IsAlreadyExists(err) {
			created, err = r.client.ImageService().Update(ctx, alias, "target")
		}
		if err != nil {
			return fmt.Errorf("runtime: name imported image %s as %s: %w", imgs[0].Name, name, err)
		}
		found = &created
	}
	return r.unpack(ctx, containerd.NewImage(r.client, *found))
}

func (r *Runtime) unpack(ctx context.Context, img containerd.Image) error {
	ok, err := img.IsUnpacked(ctx, "")
	if err == nil && ok {
		return nil
	}
	if err := img.Unpack(ctx, ""); err != nil {
		return fmt.Errorf("runtime: unpack image %s: %w (is it built for this platform?)", img.Name(), err)
	}
	return nil
}

func (r *Runtime) pull(ctx context.Context, name string) error {
	var ropts []docker.RegistryOpt
	if len(r.cfg.PlainHTTP) > 0 {
		plain := slices.Clone(r.cfg.PlainHTTP)
		ropts = append(ropts, docker.WithPlainHTTP(func(host string) (bool, error) {
			return slices.Contains(plain, host), nil
		}))
	}
	var aopts []docker.AuthorizerOpt
	if r.cfg.Auth != nil {
		aopts = append(aopts, docker.WithAuthCreds(r.cfg.Auth))
	}
	ropts = append(ropts, docker.WithAuthorizer(docker.NewDockerAuthorizer(aopts...)))
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(ropts...)})
	if _, err := r.client.Pull(ctx, name, containerd.WithResolver(resolver), containerd.WithPullUnpack); err != nil {
		hint := "check the name, the registry's reachability and credentials"
		if errors.Is(err, errdefs.ErrNotFound) {
			hint = "the registry does not have it; load it with `ccctl image load` or fix the name"
		}
		return fmt.Errorf("runtime: pull %s: %w (%s)", name, err, hint)
	}
	return nil
}
