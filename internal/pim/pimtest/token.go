package pimtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// TokenOption adjusts a token minted by Server.Token.
type TokenOption func(*tokenClaims)

// WithMFA marks the token as obtained with multi-factor authentication
// (amr contains "mfa"), which roles with RequiresMFA demand.
func WithMFA() TokenOption {
	return func(c *tokenClaims) { c.AMR = append(c.AMR, "mfa") }
}

// WithScopes replaces the token's delegated permissions (scp), e.g. with
// those of the Azure CLI's Graph token, which cannot activate roles. None
// at all leaves scp empty.
func WithScopes(scopes ...string) TokenOption {
	return func(c *tokenClaims) { c.Scp = strings.Join(scopes, " ") }
}

// WithACRS marks the token as meeting Conditional Access authentication
// contexts (acrs), e.g. "c1", which roles with AuthContext demand.
func WithACRS(values ...string) TokenOption {
	return func(c *tokenClaims) { c.ACRS = append(c.ACRS, values...) }
}

// WithTokenLifetime sets how long the token is valid, measured on the
// emulator's clock. Server.Token defaults to 30 days, because tests on a
// fake clock routinely move it by hours; /_emulator/token issues one-hour
// tokens, as Entra does.
func WithTokenLifetime(d time.Duration) TokenOption {
	return func(c *tokenClaims) { c.Exp = c.IAT + int64(d/time.Second) }
}

const (
	goTokenLifetime   = 30 * 24 * time.Hour
	httpTokenLifetime = time.Hour
)

// graphScopes are the delegated permissions a real Graph token for PIM
// self-activation carries: of directory roles, then of PIM for Groups
// (with a group read permission to resolve group names).
const graphScopes = "RoleAssignmentSchedule.ReadWrite.Directory RoleEligibilitySchedule.Read.Directory RoleManagement.Read.Directory " +
	"PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup PrivilegedEligibilitySchedule.Read.AzureADGroup GroupMember.Read.All"

type tokenClaims struct {
	Aud  string   `json:"aud"`
	Iss  string   `json:"iss"`
	IAT  int64    `json:"iat"`
	NBF  int64    `json:"nbf"`
	Exp  int64    `json:"exp"`
	AMR  []string `json:"amr"`
	ACRS []string `json:"acrs,omitempty"`
	Name string   `json:"name,omitempty"`
	OID  string   `json:"oid"`
	Scp  string   `json:"scp"`
	Sub  string   `json:"sub"`
	TID  string   `json:"tid"`
	Ver  string   `json:"ver"`
}

// caller is who a verified token speaks for.
type caller struct {
	aud    string // the token's audience: Graph or ARM
	oid    string
	mfa    bool
	scopes []string // scp, split
	acrs   []string
}

var b64 = base64.RawURLEncoding

// mintToken returns a JWT signed with HS256 under key, so that the
// emulator can tell its own tokens from forged or altered ones.
func mintToken(key []byte, c tokenClaims) string {
	header := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	payload, _ := json.Marshal(c) // plain struct: cannot fail
	signing := header + "." + b64.EncodeToString(payload)
	return signing + "." + b64.EncodeToString(sign(key, signing))
}

func sign(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// authError is a token refusal; its text is the message Graph gives.
type authError string

func (e authError) Error() string { return string(e) }

const (
	errNoToken      authError = "Access token is empty."
	errBadToken     authError = "Access token validation failure. Invalid audience or signature."
	errExpiredToken authError = "Lifetime validation failed, the token is expired."
)

// verifyToken checks an Authorization header value and returns the caller.
func verifyToken(key []byte, authz string, now time.Time) (caller, error) {
	raw, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		return caller{}, errNoToken
	}
	parts := strings.Split(strings.TrimSpace(raw), ".")
	if len(parts) != 3 {
		return caller{}, errBadToken
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, sign(key, parts[0]+"."+parts[1])) {
		return caller{}, errBadToken
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return caller{}, errBadToken
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.OID == "" {
		return caller{}, errBadToken
	}
	if now.Unix() >= c.Exp {
		return caller{}, errExpiredToken
	}
	return caller{aud: c.Aud, oid: strings.ToLower(c.OID), mfa: slices.Contains(c.AMR, "mfa"), scopes: strings.Fields(c.Scp), acrs: c.ACRS}, nil
}
