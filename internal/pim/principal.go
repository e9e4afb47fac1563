package pim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsGUID reports whether s is a GUID such as an Entra object id.
func IsGUID(s string) bool { return guid.MatchString(s) }

// Principal returns the user's Entra object id: the configured principalId,
// else the oid claim of the credential's Graph token (decoded, not verified:
// Graph verifies it on every call).
func (c *Client) Principal(ctx context.Context) (string, error) {
	if c.principalID != "" {
		return c.principalID, nil
	}
	c.mu.Lock()
	oid := c.oid
	c.mu.Unlock()
	if oid != "" {
		return oid, nil
	}
	tok, err := c.cred.GetToken(ctx, graphToken())
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrAuth, err)
	}
	claims, err := decodeClaims(tok.Token)
	if err != nil {
		return "", fmt.Errorf("%w: reading the oid claim of the Graph token: %w", ErrInvalidPrincipal, err)
	}
	if !IsGUID(claims.OID) {
		return "", fmt.Errorf("%w: the Graph token's oid claim is %q; set approvals.principalId", ErrInvalidPrincipal, claims.OID)
	}
	c.mu.Lock()
	c.oid = claims.OID
	c.mu.Unlock()
	return claims.OID, nil
}

type tokenClaims struct {
	OID  string   `json:"oid"`
	TID  string   `json:"tid"`
	Exp  int64    `json:"exp"`
	Scp  string   `json:"scp"`  // delegated permissions, space-separated
	AMR  []string `json:"amr"`  // how the user signed in, e.g. pwd, mfa
	ACRS []string `json:"acrs"` // authentication contexts met
	UPN  string   `json:"upn"`
	Name string   `json:"name"`
}

func (t tokenClaims) expiry() time.Time { return time.Unix(t.Exp, 0) }

// decodeClaims reads the payload of a JWT without verifying its signature.
func decodeClaims(token string) (tokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return tokenClaims{}, errors.New("not a JWT (want header.payload.signature)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return tokenClaims{}, fmt.Errorf("JWT payload: %w", err)
	}
	var cl tokenClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return tokenClaims{}, fmt.Errorf("JWT payload: %w", err)
	}
	return cl, nil
}

// TokenInfo is what the credential's Graph token says of the signed-in
// user: decoded, not verified (it is our own token; Graph verifies it).
type TokenInfo struct {
	TenantID, ObjectID, User string
	Scopes                   []string // scp: the delegated permissions
	AMR, ACRS                []string // how the user signed in; authentication contexts met
}

// TokenInfo gets a Graph token and reads it.
func (c *Client) TokenInfo(ctx context.Context) (TokenInfo, error) {
	tok, err := c.cred.GetToken(ctx, graphToken())
	if err != nil {
		return TokenInfo{}, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	cl, err := decodeClaims(tok.Token)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("reading the Graph token: %w", err)
	}
	user := cl.UPN
	if user == "" {
		user = cl.Name
	}
	return TokenInfo{TenantID: cl.TID, ObjectID: cl.OID, User: user, Scopes: strings.Fields(cl.Scp), AMR: cl.AMR, ACRS: cl.ACRS}, nil
}
