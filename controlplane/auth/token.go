// Package auth authenticates API calls: bearer tokens whose secrets are stored
// only as SHA-256 hashes, roles that say which methods a token may call, and
// the gRPC interceptors and HTTP middleware that enforce both.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
)

// A bearer token reads CCAPI-1-<id>-<secret>: a fixed prefix that secret
// scanners can match, a format version, a public id used to find the stored
// record, and the secret whose hash the record keeps.
const (
	tokenPrefix  = "CCAPI"
	tokenVersion = "1"
	idBytes      = 8
	secretBytes  = 32
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrMalformed is returned by ParseToken for a string that is not a token.
var ErrMalformed = errors.New("malformed API token: expected CCAPI-1-<id>-<secret>")

// NewToken makes a token: its id, its secret, and the whole bearer string.
func NewToken() (id, secret, bearer string, err error) {
	buf := make([]byte, idBytes+secretBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", "", "", err
	}
	id = hex.EncodeToString(buf[:idBytes])
	secret = strings.ToLower(b32.EncodeToString(buf[idBytes:]))
	return id, secret, strings.Join([]string{tokenPrefix, tokenVersion, id, secret}, "-"), nil
}

// ParseToken splits a bearer string into id and secret.
func ParseToken(bearer string) (id, secret string, err error) {
	parts := strings.Split(bearer, "-")
	if len(parts) != 4 || parts[0] != tokenPrefix || parts[1] != tokenVersion {
		return "", "", ErrMalformed
	}
	id, secret = parts[2], parts[3]
	if len(id) != 2*idBytes || !isLowerHex(id) || secret == "" || len(secret) > 128 || !isLowerBase32(secret) {
		return "", "", ErrMalformed
	}
	return id, secret, nil
}

// HashSecret is the stored form of a secret.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

func isLowerBase32(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
