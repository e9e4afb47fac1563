// Package authn makes mcp-gate's HTTP front an OAuth protected resource for
// Microsoft Entra: it validates each request's access token (RS256
// signature against the tenant's published keys, issuer, audience, tenant,
// lifetime) and yields the caller's Entra object id, the principal every
// PIM decision is made for. It also serves the RFC 9728 protected resource
// metadata that tells MCP clients where to get such a token.
package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcp-gate/mcp-gate/internal/pim"
)

// DefaultAuthority is Entra's public cloud sign-in host.
const DefaultAuthority = "https://login.microsoftonline.com"

const (
	// DefaultSkew is how far exp and nbf may be off the gate's clock.
	DefaultSkew = time.Minute
	// maxTokenBytes bounds a bearer token; Entra's are a few KB, more with
	// many group claims.
	maxTokenBytes = 32 << 10
)

// Clock is the time source; tests pass a fake one.
type Clock interface{ Now() time.Time }

// Config says which tokens a Validator accepts.
type Config struct {
	// Authority is the sign-in host, DefaultAuthority when empty.
	Authority string
	// TenantID is the tenant (a GUID) whose users may call; tokens of
	// other tenants are refused.
	TenantID string
	// Audiences are the values the token's aud must be one of: the gate's
	// application id URI (api://…) and, since Entra puts the client id in
	// aud for v2.0 tokens, its client id.
	Audiences []string
	// Skew is how far exp and nbf may be off; DefaultSkew when zero.
	Skew time.Duration
	// CAFile is a PEM CA certificate trusted for the authority besides the
	// system's (a test issuer's); used when HTTPClient is nil.
	CAFile string
	// HTTPClient fetches metadata and keys; one with a bounded wait when nil.
	HTTPClient *http.Client
	Clock      Clock
}

// Identity is who a valid token speaks for.
type Identity struct {
	OID      string   // the Entra object id, lower case: the PIM principal
	TenantID string   // tid
	Scopes   []string // scp, delegated permissions
	Roles    []string // roles, application permissions
	// AMR and ACRS are the authentication methods and the authentication
	// context class references the sign-in satisfied.
	AMR  []string
	ACRS []string
}

// HasScope reports whether the token grants scope, delegated (scp) or as
// an application role.
func (id Identity) HasScope(scope string) bool {
	return slices.Contains(id.Scopes, scope) || slices.Contains(id.Roles, scope)
}

// claims are the parts of an Entra access token the gate reads.
type claims struct {
	jwt.RegisteredClaims
	OID   string   `json:"oid"`
	TID   string   `json:"tid"`
	Scp   string   `json:"scp"`
	Roles []string `json:"roles"`
	AMR   []string `json:"amr"`
	ACRS  []string `json:"acrs"`
}

// Error is a refused token; its text says why, for the client (it never
// contains the token).
type Error struct{ Reason string }

func (e *Error) Error() string { return "invalid token: " + e.Reason }

// ErrNoToken is a request that carries no bearer token.
var ErrNoToken = errors.New("no bearer token: sign in with Entra and send Authorization: Bearer <access token>")

// Validator checks Entra access tokens. It is safe for concurrent use.
type Validator struct {
	cfg     Config
	keys    *keySet
	parser  *jwt.Parser
	issuers []string
}

// New returns a Validator for cfg. Keys are fetched on first use, so the
// gate starts while Entra is unreachable and refuses calls until it is not.
func New(cfg Config) (*Validator, error) {
	if cfg.Authority == "" {
		cfg.Authority = DefaultAuthority
	}
	cfg.Authority = strings.TrimRight(cfg.Authority, "/")
	switch {
	case !pim.IsGUID(cfg.TenantID):
		return nil, fmt.Errorf("authn: tenantId %q is not a GUID: name the one tenant whose users may call", cfg.TenantID)
	case len(cfg.Audiences) == 0:
		return nil, errors.New("authn: an audience (the gate's application id URI) is required")
	case !strings.HasPrefix(cfg.Authority, "https://") && !strings.HasPrefix(cfg.Authority, "http://"):
		return nil, fmt.Errorf("authn: authority %q is not an http(s) URL", cfg.Authority)
	}
	if cfg.Skew <= 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.HTTPClient == nil {
		hc, err := httpClient(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.HTTPClient = hc
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	cfg.TenantID = strings.ToLower(cfg.TenantID)
	v := &Validator{
		cfg:  cfg,
		keys: newKeySet(cfg.HTTPClient, cfg.Clock, MetadataURL(cfg.Authority, cfg.TenantID)),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}), // never none, never HS* keyed by a public key
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithLeeway(cfg.Skew),
			jwt.WithTimeFunc(cfg.Clock.Now),
			jwt.WithExpirationRequired(),
		),
	}
	// v1.0 tokens (the app's accessTokenAcceptedVersion unset) name the
	// tenant under sts.windows.net; v2.0 tokens under the authority.
	v.issuers = []string{cfg.Authority + "/" + cfg.TenantID + "/v2.0"}
	if cfg.Authority == DefaultAuthority {
		v.issuers = append(v.issuers, "https://sts.windows.net/"+cfg.TenantID+"/")
	}
	return v, nil
}

// MetadataURL is the tenant's OpenID Connect discovery document.
func MetadataURL(authority, tenantID string) string {
	return strings.TrimRight(authority, "/") + "/" + tenantID + "/v2.0/.well-known/openid-configuration"
}

// Ready reports whether the validator holds the tenant's signing keys, so
// that it can check tokens; when it holds none it fetches them (one fetch
// for all callers, spaced after a failure), waiting at most until ctx ends.
// Readiness probes call it: a replica takes no traffic before it can check
// a token, so a burst of calls never meets a cold key set.
func (v *Validator) Ready(ctx context.Context) error {
	return v.keys.ready(ctx)
}

// AuthorizationServer is the issuer clients get tokens from, as RFC 9728
// metadata names it.
func (v *Validator) AuthorizationServer() string { return v.issuers[0] }

// Validate checks raw, a bearer token, and returns who it speaks for. An
// invalid token is an *Error; a failure to get the tenant's keys is
// another error (the token may be good: the client should not be told to
// sign in again).
func (v *Validator) Validate(ctx context.Context, raw string) (Identity, error) {
	if raw == "" {
		return Identity{}, ErrNoToken
	}
	if len(raw) > maxTokenBytes {
		return Identity{}, &Error{fmt.Sprintf("the token is longer than %d bytes", maxTokenBytes)}
	}
	var c claims
	var keyErr error
	_, err := v.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := v.keys.key(ctx, kid)
		if err != nil {
			keyErr = err
		}
		return k, err
	})
	if err != nil {
		if keyErr != nil && !errors.Is(keyErr, errUnknownKey) {
			return Identity{}, keyErr
		}
		return Identity{}, &Error{reason(err, keyErr)}
	}
	if !slices.Contains(v.issuers, c.Issuer) {
		return Identity{}, &Error{fmt.Sprintf("issuer %q is not this tenant's", c.Issuer)}
	}
	if !strings.EqualFold(c.TID, v.cfg.TenantID) {
		return Identity{}, &Error{fmt.Sprintf("tenant %q is not the tenant this gate serves", c.TID)}
	}
	if !pim.IsGUID(c.OID) {
		return Identity{}, &Error{"the token has no oid claim naming a user's object id (an app-only token cannot act for a person)"}
	}
	return Identity{
		OID: strings.ToLower(c.OID), TenantID: strings.ToLower(c.TID),
		Scopes: strings.Fields(c.Scp), Roles: c.Roles, AMR: c.AMR, ACRS: c.ACRS,
	}, nil
}

// reason turns a parse failure into a sentence for the client.
func reason(err, keyErr error) string {
	switch {
	case keyErr != nil:
		return keyErr.Error()
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token is not for this gate (audience)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the token is not signed (RS256) by this tenant's key"
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is not a signed JWT"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// jwt says which: "…: aud claim is required"
		msg := err.Error()
		return "the token lacks a required claim: " + msg[strings.LastIndex(msg, ": ")+2:]
	}
	return "the token does not validate"
}

// httpClient trusts the system's CAs and caFile's; it follows no
// redirects, so keys come only from where the metadata says.
func httpClient(caFile string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("authn: caFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("authn: caFile %s: no PEM certificate found", caFile)
		}
		t.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: t, Timeout: fetchTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, nil
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
