// Package openapi embeds the OpenAPI (Swagger 2.0) document of the REST API:
// the part generated from proto/ by `make proto` (cc.swagger.json), merged
// with plain.json, which describes the routes served beside the gateway
// (uploads, downloads, the exec WebSocket, whoami).
package openapi

import (
	_ "embed"
	"encoding/json"
)

//go:embed cc.swagger.json
var generated []byte

//go:embed plain.json
var plain []byte

// Spec is the whole document, served at GET /v1/openapi.json.
var Spec = merge(generated, plain)

// merge adds the paths and definitions of extra to doc's (extra's win).
func merge(doc, extra []byte) []byte {
	var d, x map[string]json.RawMessage
	if err := json.Unmarshal(doc, &d); err != nil {
		panic("openapi: cc.swagger.json: " + err.Error())
	}
	if err := json.Unmarshal(extra, &x); err != nil {
		panic("openapi: plain.json: " + err.Error())
	}
	for _, key := range []string{"paths", "definitions"} {
		var into, from map[string]json.RawMessage
		if err := json.Unmarshal(d[key], &into); err != nil {
			panic("openapi: cc.swagger.json " + key + ": " + err.Error())
		}
		if err := json.Unmarshal(x[key], &from); err != nil {
			panic("openapi: plain.json " + key + ": " + err.Error())
		}
		for k, v := range from {
			into[k] = v
		}
		b, err := json.Marshal(into)
		if err != nil {
			panic(err)
		}
		d[key] = b
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(err)
	}
	return out
}
