package config

import "testing"

// The documented example must stay valid and match the defaults it claims.
func TestDocumentedExampleIsValid(t *testing.T) {
	cfg, err := Load("../../docs/controlplane.example.toml")
	if err != nil {
		t.Fatalf("docs/controlplane.example.toml: %v", err)
	}
	def := Default()
	def.DataDir = "/var/lib/cc"
	def.Name = cfg.Name
	if cfg.APIAddr != def.APIAddr || cfg.RaftAddr != def.RaftAddr || cfg.Raft != def.Raft || cfg.Log != def.Log || cfg.JoinLimit != def.JoinLimit || cfg.RateLimit != def.RateLimit || cfg.Tracing != def.Tracing || len(cfg.Webhooks.Allow) != 0 {
		t.Errorf("example differs from the defaults:\nexample %+v\ndefault %+v", cfg, def)
	}
}
