package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/containercodes/cc/internal/pki"
)

// Context is one cluster ccctl can talk to, as kubectl contexts and docker
// contexts are: an address, a token and how the server is verified, by the
// cluster CA that signs it (CACert, pinned) or, for a server that presents an
// operator's certificate for the address's host name (its tls_cert_file), by
// the system's trusted roots (SystemRoots).
type Context struct {
	Addr   string `json:"addr"`
	Token  string `json:"token"`
	CACert string `json:"ca_cert"` // PEM
	// SystemRoots verifies the server with the system's roots and the host
	// name of Addr instead of CACert; used only when CACert is empty.
	SystemRoots bool `json:"system_roots,omitempty"`
	// Members and Removed are the cluster's servers and those removed from
	// it, with their key pins: ccctl refuses a removed server, or a
	// member's id with another key (pki.Trust). They, and CACert during a
	// CA rotation, are refreshed from a known member at most every
	// trustRefreshEvery (TrustCheckedAt).
	Members        []pki.ServerKey `json:"members,omitempty"`
	Removed        []pki.ServerKey `json:"removed,omitempty"`
	TrustCheckedAt time.Time       `json:"trust_checked_at,omitzero"`
}

// Contexts is ccctl's config file: $XDG_CONFIG_HOME/ccctl/config.json (or
// ~/.config/ccctl/config.json), mode 0600; CC_CONFIG overrides the path.
type Contexts struct {
	Current  string              `json:"current"`
	Contexts map[string]*Context `json:"contexts"`
}

// ConfigPath is where the config file lives.
func ConfigPath() (string, error) {
	if p := os.Getenv("CC_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config dir: %w (set CC_CONFIG)", err)
	}
	return filepath.Join(dir, "ccctl", "config.json"), nil
}

// LoadContexts reads the config file; a missing file is an empty config.
func LoadContexts(path string) (*Contexts, error) {
	c := &Contexts{Contexts: map[string]*Context{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s: %v (fix or remove the file)", path, err)
	}
	if c.Contexts == nil {
		c.Contexts = map[string]*Context{}
	}
	return c, nil
}

// Save writes the config file with mode 0600: it holds tokens.
func (c *Contexts) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return pki.WriteFile(path, append(data, '\n'), 0o600)
}

// Names returns the context names, sorted.
func (c *Contexts) Names() []string {
	var names []string
	for n := range c.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
