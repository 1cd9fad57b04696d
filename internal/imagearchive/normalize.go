package imagearchive

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalidReference is an image reference Normalize refuses.
var ErrInvalidReference = errors.New("invalid image reference")

const (
	maxRefLength  = 512 // a whole reference, before normalizing
	maxNameLength = 255 // the path without the registry host, as docker
)

var (
	// A path component: lowercase alphanumerics separated by ".", "_",
	// "__" or dashes.
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// A registry host: DNS labels or a bracketed IPv6 address, and a port.
	domainPattern = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$`)
	digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	hex64         = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Normalize turns an image reference into its full docker-style form:
// "busybox" is "docker.io/library/busybox:latest", "foo/bar:1" is
// "docker.io/foo/bar:1", "localhost:5000/x" is "localhost:5000/x:latest".
// A digest ("@sha256:<hex>") is kept, and a reference with a digest and no
// tag gets no ":latest". The repository path must be lowercase and the tag
// at most 128 characters of letters, digits, "_", "." and "-". Without a
// digest it agrees with docker's (github.com/distribution/reference)
// ParseDockerRef; digests are sha256 only.
// Normalizing a normalized reference returns it unchanged.
func Normalize(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidReference)
	}
	if len(ref) > maxRefLength {
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidReference, maxRefLength)
	}
	if hex64.MatchString(ref) {
		// As docker: 64 hex digits are an image id, never a name.
		return "", fmt.Errorf("%w %q: 64 hex digits are an id, not a repository name", ErrInvalidReference, ref)
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !digestPattern.MatchString(digest) {
		return "", fmt.Errorf("%w %q: the digest must be sha256: and 64 lowercase hex digits", ErrInvalidReference, ref)
	}
	var tag string
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
		if !tagPattern.MatchString(tag) {
			return "", fmt.Errorf("%w %q: a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", ErrInvalidReference, ref)
		}
	}
	domain, path := "", name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		first := name[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, path = first, name[i+1:]
		}
	}
	switch domain {
	case "", "index.docker.io":
		domain = "docker.io"
	}
	if !domainPattern.MatchString(domain) {
		return "", fmt.Errorf("%w %q: bad registry host %q", ErrInvalidReference, ref, domain)
	}
	if domain == "docker.io" && path != "" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	for _, c := range strings.Split(path, "/") {
		if pathComponent.MatchString(c) {
			continue
		}
		if pathComponent.MatchString(strings.ToLower(c)) {
			return "", fmt.Errorf("%w %q: the repository name must be lowercase", ErrInvalidReference, ref)
		}
		return "", fmt.Errorf("%w %q: bad repository name component %q (lowercase letters and digits, separated by '.', '_', '__' or '-')", ErrInvalidReference, ref, c)
	}
	// Docker bounds the path ("library/busybox"), not the host with it.
	if len(path) > maxNameLength {
		return "", fmt.Errorf("%w %q: the repository name is longer than %d characters (without the registry host)", ErrInvalidReference, ref, maxNameLength)
	}
	full := domain + "/" + path
	if tag == "" && !hasDigest {
		tag = "latest"
	}
	if tag != "" {
		full += ":" + tag
	}
	if hasDigest {
		full += "@" + digest
	}
	return full, nil
}
