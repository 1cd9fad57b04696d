package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// bigTokenBody is a JSON CreateToken request of about size bytes.
func bigTokenBody(size int) string {
	return `{"description":"` + strings.Repeat("a", size) + `","role":"ROLE_VIEWER"}`
}

// TestRESTBodyLimit: a REST body over the limit answers 413 with a JSON
// error naming the limit, whether its length is declared (50 MB) or not
// (20 MB, streamed), and a body under the REST limit but over gRPC's
// message limit answers 413 too, not 429 as a rate limit would (issue 14,
// #13). The server goes on serving.
func TestRESTBodyLimit(t *testing.T) {
	srv := testcluster.Start(t)
	client := srv.HTTPClient()
	post := func(body io.Reader, size int64, token string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL()+"/v1/tokens", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST /v1/tokens with %d bytes: %v", size, err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("POST /v1/tokens with %d bytes: %s, not JSON: %v", size, resp.Status, err)
		}
		return resp.StatusCode, m
	}
	const mb = 1 << 20
	for _, c := range []struct {
		name  string
		body  string
		size  int64 // -1: not declared
		token string
		want  string // in the message
	}{
		{"50 MB declared", bigTokenBody(50 * mb), -2, srv.Token, "limit of 16777216 bytes (16 MiB)"},
		{"50 MB declared, no token", bigTokenBody(50 * mb), -2, "", "limit of 16777216 bytes (16 MiB)"},
		{"20 MB streamed", bigTokenBody(20 * mb), -1, srv.Token, "limit of 16777216 bytes (16 MiB)"},
		{"5 MB, over gRPC's message limit", bigTokenBody(5 * mb), -2, srv.Token, "larger than the server takes in one message"},
	} {
		size := c.size
		var body io.Reader = strings.NewReader(c.body)
		if size == -2 {
			size = int64(len(c.body))
		} else {
			body = io.MultiReader(body) // hides the length
		}
		code, m := post(body, size, c.token)
		msg, _ := m["message"].(string)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %v; want 413 with %q", c.name, code, m, c.want)
		}
	}

	// Still serving, small bodies included.
	code, m := post(strings.NewReader(`{"description":"small","role":"ROLE_VIEWER"}`), -1, srv.Token)
	if code != http.StatusOK || m["token"] == "" {
		t.Errorf("a small CreateToken after the large ones: %d %v", code, m)
	}
	resp, err := client.Get(srv.URL() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after the large bodies: %v %v", resp, err)
	}
	resp.Body.Close()
}
