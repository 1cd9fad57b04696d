package server

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/config"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// rateLimits turns the rate_limit section into the limiter's rules.
func rateLimits(c config.RateLimitConfig) auth.RateLimits {
	return auth.RateLimits{
		Roles: map[ccv1.Role]auth.RateRule{
			ccv1.Role_ROLE_ADMIN:  {PerSecond: c.AdminPerSecond, Burst: c.AdminBurst},
			ccv1.Role_ROLE_VIEWER: {PerSecond: c.ViewerPerSecond, Burst: c.ViewerBurst},
			ccv1.Role_ROLE_JOBS:   {PerSecond: c.JobsPerSecond, Burst: c.JobsBurst},
		},
		Address:    auth.RateRule{PerSecond: c.AddressPerSecond, Burst: c.AddressBurst},
		FailedAuth: auth.RateRule{PerSecond: c.FailedAuthPerMinute / 60, Burst: c.FailedAuthBurst},
	}
}

// RateLimit returns the rate_limit section in force.
func (s *Server) RateLimit() config.RateLimitConfig {
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	return s.rateCfg
}

// SetRateLimit applies a new rate_limit section (after a reload of the
// config file); the buckets keep what they hold. It returns the changes,
// as "key: old -> new", empty when none, for the caller to log.
func (s *Server) SetRateLimit(c config.RateLimitConfig) ([]string, error) {
	cfg := config.Default()
	cfg.DataDir = "-"
	cfg.RateLimit = c
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	old := s.rateCfg
	s.rateCfg = c
	if s.limiter != nil {
		s.limiter.SetLimits(rateLimits(c))
	}
	return rateLimitChanges(old, c), nil
}

// rateLimitChanges lists the keys of the rate_limit section that differ.
func rateLimitChanges(old, cur config.RateLimitConfig) []string {
	var out []string
	ov, cv := reflect.ValueOf(old), reflect.ValueOf(cur)
	t := ov.Type()
	for i := 0; i < t.NumField(); i++ {
		a, b := ov.Field(i).Interface(), cv.Field(i).Interface()
		if a != b {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
			out = append(out, fmt.Sprintf("rate_limit.%s: %v -> %v", name, a, b))
		}
	}
	return out
}
