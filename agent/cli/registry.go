package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// registryAuth reads registry credentials from a docker-style config file
// ({"auths": {"HOST": {"auth": base64("user:password")}}} or with "username"
// and "password") and returns the lookup the runtime's resolver calls.
func registryAuth(path string) (func(host string) (string, string, error), error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--registry-auth: %w", err)
	}
	var file struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("--registry-auth %s: %v (want docker's config.json format)", path, err)
	}
	creds := map[string][2]string{}
	for host, a := range file.Auths {
		user, pass := a.Username, a.Password
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("--registry-auth %s: auth of %s is not base64", path, host)
			}
			var ok bool
			if user, pass, ok = strings.Cut(string(raw), ":"); !ok {
				return nil, fmt.Errorf("--registry-auth %s: auth of %s is not user:password", path, host)
			}
		}
		host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
		creds[strings.TrimSuffix(host, "/")] = [2]string{user, pass}
	}
	return func(host string) (string, string, error) {
		c := creds[host]
		return c[0], c[1], nil
	}, nil
}
