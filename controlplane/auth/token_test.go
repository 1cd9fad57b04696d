package auth

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestNewTokenParseTokenRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		id, secret, bearer, err := NewToken()
		if err != nil {
			t.Fatalf("NewToken: %v", err)
		}
		if !strings.HasPrefix(bearer, "CCAPI-1-") {
			t.Fatalf("bearer %q lacks prefix CCAPI-1-", bearer)
		}
		if want := "CCAPI-1-" + id + "-" + secret; bearer != want {
			t.Fatalf("bearer = %q, want %q", bearer, want)
		}
		if len(id) != 16 || !isLowerHex(id) {
			t.Fatalf("id %q: want 16 lowercase hex digits", id)
		}
		if secret == "" || strings.Contains(secret, "-") || secret != strings.ToLower(secret) {
			t.Fatalf("secret %q: want non-empty, lowercase, no dashes", secret)
		}
		gotID, gotSecret, err := ParseToken(bearer)
		if err != nil {
			t.Fatalf("ParseToken(%q): %v", bearer, err)
		}
		if gotID != id || gotSecret != secret {
			t.Fatalf("ParseToken(%q) = %q, %q; want %q, %q", bearer, gotID, gotSecret, id, secret)
		}
		if seen[id] || seen[secret] {
			t.Fatalf("NewToken repeated an id or secret: %q", bearer)
		}
		seen[id], seen[secret] = true, true
	}
}

func TestParseTokenMalformed(t *testing.T) {
	const id = "0123456789abcdef"
	const secret = "abcdefghijklmnop"
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"only prefix", "CCAPI-1-"},
		{"wrong prefix", "CCAPX-1-" + id + "-" + secret},
		{"lowercase prefix", "ccapi-1-" + id + "-" + secret},
		{"no prefix", id + "-" + secret},
		{"wrong version", "CCAPI-2-" + id + "-" + secret},
		{"empty version", "CCAPI--" + id + "-" + secret},
		{"uppercase id", "CCAPI-1-" + strings.ToUpper(id) + "-" + secret},
		{"non-hex id", "CCAPI-1-0123456789abcdeg-" + secret},
		{"short id", "CCAPI-1-" + id[:15] + "-" + secret},
		{"long id", "CCAPI-1-" + id + "0-" + secret},
		{"empty id", "CCAPI-1--" + secret},
		{"empty secret", "CCAPI-1-" + id + "-"},
		{"no secret", "CCAPI-1-" + id},
		{"extra dash in secret", "CCAPI-1-" + id + "-" + secret + "-x"},
		{"trailing dash", "CCAPI-1-" + id + "-" + secret + "-"},
		{"leading dash", "-CCAPI-1-" + id + "-" + secret},
		{"secret too long", "CCAPI-1-" + id + "-" + strings.Repeat("a", 129)},
		{"bearer scheme included", "Bearer CCAPI-1-" + id + "-" + secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, gotSecret, err := ParseToken(tt.token)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseToken(%q) error = %v, want ErrMalformed", tt.token, err)
			}
			if gotID != "" || gotSecret != "" {
				t.Fatalf("ParseToken(%q) = %q, %q with an error; want empty results", tt.token, gotID, gotSecret)
			}
		})
	}
}

func TestParseTokenAcceptsLimits(t *testing.T) {
	for _, secret := range []string{"a", strings.Repeat("z", 128)} {
		bearer := "CCAPI-1-0123456789abcdef-" + secret
		if _, got, err := ParseToken(bearer); err != nil || got != secret {
			t.Fatalf("ParseToken(%q) = %q, %v; want %q, nil", bearer, got, err, secret)
		}
	}
}

func TestHashSecret(t *testing.T) {
	a, b := HashSecret("s1"), HashSecret("s2")
	if len(a) != 32 {
		t.Fatalf("hash length %d, want 32", len(a))
	}
	if !bytes.Equal(a, HashSecret("s1")) {
		t.Fatal("HashSecret is not deterministic")
	}
	if bytes.Equal(a, b) {
		t.Fatal("different secrets share a hash")
	}
}

type fakeStore map[string]*statev1.TokenRecord

func (s fakeStore) Token(id string) (*statev1.TokenRecord, error) {
	if r, ok := s[id]; ok {
		return r, nil
	}
	return nil, errors.New("not found")
}

func mustToken(t *testing.T) (id, secret, bearer string) {
	t.Helper()
	id, secret, bearer, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return id, secret, bearer
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	store := fakeStore{}
	add := func(role ccv1.Role, mod func(*statev1.TokenRecord)) string {
		id, secret, bearer := mustToken(t)
		rec := &statev1.TokenRecord{Id: id, Role: int32(role), SecretSha256: HashSecret(secret)}
		if mod != nil {
			mod(rec)
		}
		store[id] = rec
		return bearer
	}
	admin := add(ccv1.Role_ROLE_ADMIN, nil)
	viewer := add(ccv1.Role_ROLE_VIEWER, func(r *statev1.TokenRecord) { r.ExpiresAt = timestamppb.New(now.Add(time.Second)) })
	revoked := add(ccv1.Role_ROLE_ADMIN, func(r *statev1.TokenRecord) { r.Revoked = true })
	expired := add(ccv1.Role_ROLE_ADMIN, func(r *statev1.TokenRecord) { r.ExpiresAt = timestamppb.New(now) })
	adminID, _, _ := ParseToken(admin)
	_, _, unknown := mustToken(t)

	a := NewAuthenticator(store, nil)
	a.now = func() time.Time { return now }

	tests := []struct {
		name     string
		header   string
		wantRole ccv1.Role // ROLE_UNSPECIFIED: must be refused
	}{
		{"admin", "Bearer " + admin, ccv1.Role_ROLE_ADMIN},
		{"scheme is case-insensitive", "bearer " + admin, ccv1.Role_ROLE_ADMIN},
		{"viewer before expiry", "Bearer " + viewer, ccv1.Role_ROLE_VIEWER},
		{"empty", "", 0},
		{"scheme only", "Bearer ", 0},
		{"no scheme", admin, 0},
		{"basic scheme", "Basic " + admin, 0},
		{"unknown id", "Bearer " + unknown, 0},
		{"wrong secret", "Bearer CCAPI-1-" + adminID + "-wrongsecret", 0},
		{"revoked", "Bearer " + revoked, 0},
		{"expired at exactly now", "Bearer " + expired, 0},
		{"garbage", "Bearer garbage", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(tt.header)
			if tt.wantRole == ccv1.Role_ROLE_UNSPECIFIED {
				if err == nil {
					t.Fatalf("Authenticate(%q) = %+v, want an error", tt.header, p)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate(%q): %v", tt.header, err)
			}
			if p.Role != tt.wantRole {
				t.Fatalf("role = %v, want %v", p.Role, tt.wantRole)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		role   ccv1.Role
		method string
		want   bool
	}{
		{ccv1.Role_ROLE_ADMIN, ccv1.TokenService_CreateToken_FullMethodName, true},
		{ccv1.Role_ROLE_ADMIN, "/cc.v1.Future/Method", true},
		{ccv1.Role_ROLE_VIEWER, ccv1.ClusterService_GetStatus_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.NodeService_ListNodes_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.TokenService_ListTokens_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.TokenService_CreateToken_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, ccv1.TokenService_RevokeToken_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, "/cc.v1.Future/Method", false},
		{ccv1.Role_ROLE_VIEWER, ccv1.JobService_ListJobs_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.JobService_GetJob_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.JobService_WatchJobs_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.JobService_ListQueues_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.JobService_SubmitJob_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, ccv1.JobService_JobLogs_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, ccv1.JobService_JobOutput_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, ccv1.JobService_CancelJob_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, ccv1.EdgeService_ListRoutes_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.EdgeService_GetRoute_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.EdgeService_ListSites_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.EdgeService_GetSite_FullMethodName, true},
		{ccv1.Role_ROLE_VIEWER, ccv1.EdgeService_CreateRoute_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, ccv1.EdgeService_ApplyRoutes_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, ccv1.EdgeService_DeploySite_FullMethodName, false},
		{ccv1.Role_ROLE_VIEWER, ccv1.EdgeService_RemoveSite_FullMethodName, false},
		{ccv1.Role_ROLE_JOBS, ccv1.EdgeService_ListRoutes_FullMethodName, false},
		{ccv1.Role_ROLE_JOBS, ccv1.JobService_SubmitJob_FullMethodName, true},
		{ccv1.Role_ROLE_JOBS, ccv1.JobService_UploadInput_FullMethodName, true},
		{ccv1.Role_ROLE_JOBS, ccv1.JobService_CancelJob_FullMethodName, true},
		{ccv1.Role_ROLE_JOBS, ccv1.JobService_JobLogs_FullMethodName, true},
		{ccv1.Role_ROLE_JOBS, ccv1.JobService_JobOutput_FullMethodName, true},
		{ccv1.Role_ROLE_JOBS, ccv1.JobService_WatchJobs_FullMethodName, true},
		{ccv1.Role_ROLE_JOBS, ccv1.JobService_ListQueues_FullMethodName, true},
		{ccv1.Role_ROLE_JOBS, ccv1.ClusterService_GetStatus_FullMethodName, true},
		{ccv1.Role_ROLE_JOBS, ccv1.JobService_SetQueue_FullMethodName, false},
		{ccv1.Role_ROLE_JOBS, ccv1.ContainerService_ListContainers_FullMethodName, false},
		{ccv1.Role_ROLE_JOBS, ccv1.TokenService_CreateToken_FullMethodName, false},
		{ccv1.Role_ROLE_JOBS, ccv1.ImageService_LoadImage_FullMethodName, false},
		{ccv1.Role_ROLE_JOBS, "/cc.v1.Future/Method", false},
		{ccv1.Role_ROLE_UNSPECIFIED, ccv1.ClusterService_GetStatus_FullMethodName, false},
		{ccv1.Role(42), ccv1.ClusterService_GetStatus_FullMethodName, false},
	}
	for _, tt := range tests {
		if got := Allowed(tt.role, tt.method); got != tt.want {
			t.Errorf("Allowed(%v, %s) = %v, want %v", tt.role, tt.method, got, tt.want)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		"",
		"CCAPI-1-0123456789abcdef-secret",
		"CCAPI-1-0123456789abcdef-",
		"CCAPI-1-0123456789ABCDEF-secret",
		"CCAPI-2-0123456789abcdef-secret",
		"CCAPI-1-0123456789abcdef-se-cret",
		"CCAPI-1-0123456789abcdef-" + strings.Repeat("x", 128),
		"CCAPI-1-0123456789abcdef-" + strings.Repeat("x", 129),
		"CCAPI-1-é123456789abcdef-secret",
		"----",
	} {
		f.Add(s)
	}
	f.Add(func() string { _, _, b, _ := NewToken(); return b }())
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseToken(%q) error = %v, want ErrMalformed", s, err)
			}
			if id != "" || secret != "" {
				t.Fatalf("ParseToken(%q) = %q, %q with an error", s, id, secret)
			}
			return
		}
		if joined := strings.Join([]string{tokenPrefix, tokenVersion, id, secret}, "-"); joined != s {
			t.Fatalf("ParseToken(%q) = %q, %q; re-joined %q", s, id, secret, joined)
		}
		if len(id) != 16 || !isLowerHex(id) {
			t.Fatalf("ParseToken(%q) accepted id %q", s, id)
		}
		if secret == "" || len(secret) > 128 || strings.Contains(secret, "-") {
			t.Fatalf("ParseToken(%q) accepted secret %q", s, secret)
		}
	})
}
