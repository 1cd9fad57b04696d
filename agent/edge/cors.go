package edge

import (
	"net/http"
	"strings"
)

// cors is a route's CORS policy: the preflight is answered at the edge,
// a simple request from an allowed origin gets Access-Control-Allow-Origin.
type cors struct {
	any     bool
	origins map[string]bool // lowercased
}

// CORSMaxAge is how long a browser may cache a preflight answer.
const CORSMaxAge = "600"

const corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

func newCORS(origins []string) *cors {
	if len(origins) == 0 {
		return nil
	}
	c := &cors{origins: map[string]bool{}}
	for _, o := range origins {
		o = strings.TrimRight(strings.ToLower(strings.TrimSpace(o)), "/")
		if o == "*" {
			c.any = true
		} else if o != "" {
			c.origins[o] = true
		}
	}
	return c
}

func (c *cors) allowed(origin string) bool {
	return c.any || c.origins[strings.ToLower(origin)]
}

func (c *cors) allowOrigin(h http.Header, origin string) {
	if c.any {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
}

// preflight answers an OPTIONS preflight: 204 with the allowed origin,
// methods, headers and max-age, or 403 for an origin not allowed.
func (c *cors) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	h := w.Header()
	if !c.allowed(origin) {
		h.Add("Vary", "Origin")
		plain(w, http.StatusForbidden, "origin not allowed")
		return
	}
	c.allowOrigin(h, origin)
	h.Set("Access-Control-Allow-Methods", corsMethods)
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", CORSMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// simple adds the CORS headers to a proxied response.
func (c *cors) simple(h http.Header, origin string) {
	h.Del("Access-Control-Allow-Origin")
	c.allowOrigin(h, origin)
}
