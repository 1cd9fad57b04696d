// Package openapi embeds the OpenAPI (Swagger 2.0) document of the REST API,
// generated from proto/ by `make proto`.
package openapi

import _ "embed"

// Spec is the generated document, served at GET /v1/openapi.json.
//
//go:embed cc.swagger.json
var Spec []byte
