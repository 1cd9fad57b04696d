package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/containercodes/cc/controlplane/server"
	"github.com/containercodes/cc/internal/testing/testcluster"
	"github.com/containercodes/cc/internal/testing/testimage"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func restCall(t *testing.T, srv *testcluster.Server, method, path, token string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// TestUploadsOverREST: a job input, an image and a site uploaded as raw
// bodies answer as their gRPC methods do, are refused for roles that may
// not call those methods, and are audited as the methods.
func TestUploadsOverREST(t *testing.T) {
	srv := testcluster.Start(t)
	viewer := newToken(t, srv.Client(), &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "viewer"}).GetSecret()

	input := []byte("the job's input\n")
	sum := sha256.Sum256(input)
	code, body := restCall(t, srv, http.MethodPost, "/v1/jobs/inputs", srv.Token, input, "Content-Type", "application/octet-stream", "X-Content-Sha256", hex.EncodeToString(sum[:]))
	if code != http.StatusOK {
		t.Fatalf("POST /v1/jobs/inputs: %d %s", code, body)
	}
	var in struct {
		Digest string `json:"digest"`
		Size   string `json:"size"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Digest != "sha256:"+hex.EncodeToString(sum[:]) || in.Size != "16" {
		t.Fatalf("POST /v1/jobs/inputs: %s (%v)", body, err)
	}
	code, body = restCall(t, srv, http.MethodPost, "/v1/jobs/inputs", srv.Token, input, "X-Content-Sha256", strings.Repeat("0", 64))
	if code != http.StatusBadRequest || !strings.Contains(string(body), "message") {
		t.Errorf("an input whose sha256 differs: %d %s, want 400", code, body)
	}
	code, body = restCall(t, srv, http.MethodPost, "/v1/jobs/inputs", viewer, input)
	if code != http.StatusForbidden {
		t.Errorf("a viewer's input upload: %d %s, want 403", code, body)
	}

	archive, err := testimage.BuildBusybox("rest-upload:1")
	if err != nil {
		t.Fatal(err)
	}
	code, body = restCall(t, srv, http.MethodPost, "/v1/images/load", srv.Token, archive, "Content-Type", "application/x-tar")
	if code != http.StatusOK || !strings.Contains(string(body), "rest-upload:1") {
		t.Fatalf("POST /v1/images/load: %d %s", code, body)
	}
	code, body = restCall(t, srv, http.MethodPost, "/v1/images/load", srv.Token, []byte("not an archive"))
	if code != http.StatusBadRequest {
		t.Errorf("a bad image archive: %d %s, want 400", code, body)
	}

	site := siteArchive(t, map[string]string{"index.html": "<h1>hello</h1>\n"})
	code, body = restCall(t, srv, http.MethodPost, "/v1/sites/docs/deploy?host=docs.example.test&spa=true", srv.Token, site, "Content-Type", "application/gzip")
	if code != http.StatusOK {
		t.Fatalf("POST /v1/sites/docs/deploy: %d %s", code, body)
	}
	var dep struct {
		Site struct {
			Name    string `json:"name"`
			Current int    `json:"current"`
			Spec    struct {
				Hosts []string `json:"hosts"`
				Spa   bool     `json:"spa"`
			} `json:"spec"`
		} `json:"site"`
	}
	if err := json.Unmarshal(body, &dep); err != nil || dep.Site.Name != "docs" || dep.Site.Current != 1 || !dep.Site.Spec.Spa || len(dep.Site.Spec.Hosts) != 1 {
		t.Fatalf("deploy answered %s (%v)", body, err)
	}
	// A second deploy without a spec keeps it.
	code, body = restCall(t, srv, http.MethodPost, "/v1/sites/docs/deploy", srv.Token, site)
	if code != http.StatusOK || !strings.Contains(string(body), `"current":2`) || !strings.Contains(string(body), "docs.example.test") {
		t.Fatalf("redeploy: %d %s", code, body)
	}
	code, body = restCall(t, srv, http.MethodPost, "/v1/sites/other/deploy", srv.Token, site)
	if code != http.StatusNotFound || !strings.Contains(string(body), "host") {
		t.Errorf("deploy of a new site without its host: %d %s, want 404 saying to give a host", code, body)
	}
	code, body = restCall(t, srv, http.MethodPost, "/v1/sites/docs/deploy?spa=maybe", srv.Token, site)
	if code != http.StatusBadRequest {
		t.Errorf("spa=maybe: %d %s, want 400", code, body)
	}

	// Audited as the gRPC methods.
	code, body = restCall(t, srv, http.MethodGet, "/v1/audit?limit=1000", srv.Token, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/audit: %d %s", code, body)
	}
	for _, m := range []string{"/cc.v1.JobService/UploadInput", "/cc.v1.ImageService/LoadImage", "/cc.v1.EdgeService/DeploySite"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("the audit trail has no %s", m)
		}
	}
}

func siteArchive(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestWhoAmI(t *testing.T) {
	srv := testcluster.Start(t)
	resp := newToken(t, srv.Client(), &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_JOBS, Description: "jobs"})
	for _, c := range []struct{ token, id, role string }{
		{srv.Token, "", "admin"},
		{resp.GetSecret(), resp.GetToken().GetId(), "jobs"},
	} {
		code, body := restCall(t, srv, http.MethodGet, "/v1/whoami", c.token, nil)
		var who struct {
			TokenID string `json:"token_id"`
			Role    string `json:"role"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &who) != nil || who.Role != c.role || who.TokenID == "" || (c.id != "" && who.TokenID != c.id) {
			t.Errorf("GET /v1/whoami: %d %s, want role %s", code, body, c.role)
		}
	}
	if code, body := restCall(t, srv, http.MethodGet, "/v1/whoami", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/whoami without a token: %d %s", code, body)
	}
}

// TestExecWebSocketTokenAsSubprotocol: a browser offers its token as a
// subprotocol; the server authenticates with it, selects cc.exec.v1 and
// never echoes the token. A bad token there is refused before the upgrade.
func TestExecWebSocketTokenAsSubprotocol(t *testing.T) {
	srv := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig()}}
	url := "wss://" + srv.Addr() + "/v1/containers/no-such-container/exec"
	conn, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc,
		Subprotocols: []string{server.ExecSubprotocol, server.ExecTokenProtocolPrefix + srv.Token}})
	if err != nil {
		t.Fatalf("dial with the token as a subprotocol: %v (%v)", err, res)
	}
	defer conn.CloseNow()
	if got := conn.Subprotocol(); got != server.ExecSubprotocol {
		t.Fatalf("selected subprotocol %q, want %q", got, server.ExecSubprotocol)
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"start": {"args": ["/bin/true"]}}`)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Authenticated: the call got as far as finding the container.
	if !strings.Contains(string(msg), `"code":5`) {
		t.Fatalf("first message %s, want a NotFound error for the container", msg)
	}

	_, res, err = websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc,
		Subprotocols: []string{server.ExecSubprotocol, server.ExecTokenProtocolPrefix + "CCAPI-1-0000-bad"}})
	if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a bad token as a subprotocol: %v, %v; want 401", err, res)
	}
}
