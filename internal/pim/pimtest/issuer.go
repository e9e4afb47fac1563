package pimtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The emulator is also the tenant's Entra sign-in service, at its root:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration  OIDC metadata
//	GET  /{tenant}/discovery/v2.0/keys                     the signing keys (JWKS)
//	POST /{tenant}/oauth2/v2.0/token                       the on-behalf-of grant
//
// User tokens for an app (the gate) are RS256 JWTs signed with the key the
// JWKS publishes, shaped like Entra's v2.0 access tokens. The token
// endpoint exchanges such a token, presented by the app registered for its
// audience with that app's secret, for a Graph token for the same user.

// issuerKID names the emulator's one signing key.
const issuerKID = "pimtest-1"

// App is an application registered in the emulated tenant: a confidential
// client (the gate) that users get tokens for and that may exchange them.
type App struct {
	ClientID      string
	Secret        string
	IdentifierURI string // api://…; tokens for the app name it or the client id as aud
	// Certificates are the app's registered certificate credentials: a
	// client assertion signed with one's key, naming it by thumbprint
	// (x5t or x5t#S256), authenticates the app.
	Certificates []*x509.Certificate
	// FederatedSubject is the subject of the app's federated identity
	// credential trusting the emulator's own issuer (workload identity):
	// a token from that issuer with this sub and aud
	// api://AzureADTokenExchange authenticates the app.
	FederatedSubject string
}

// FederatedAudience is the audience of federated identity credentials.
const FederatedAudience = "api://AzureADTokenExchange"

// clientAssertionType is the only client_assertion_type Entra accepts.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// issuerState is the sign-in service's key and registrations.
type issuerState struct {
	once sync.Once
	key  *rsa.PrivateKey

	mu   sync.Mutex
	apps []App
}

// signingKey makes the RSA key on first use: most tests never need it.
func (s *Server) signingKey() *rsa.PrivateKey {
	s.issuer.once.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(fmt.Sprintf("pimtest: rsa key: %v", err)) // crypto/rand does not fail
		}
		s.issuer.key = k
	})
	return s.issuer.key
}

// RegisterApp registers a confidential client; the token endpoint accepts
// its secret and the tokens whose audience is its client id or identifier
// URI.
func (s *Server) RegisterApp(a App) {
	s.issuer.mu.Lock()
	defer s.issuer.mu.Unlock()
	s.issuer.apps = append(s.issuer.apps, a)
}

// Authority is the sign-in host, e.g. https://127.0.0.1:43123, the value
// for an authority setting (Entra's is https://login.microsoftonline.com).
// Empty before Start.
func (s *Server) Authority() string { return strings.TrimSuffix(s.url, apiVersion) }

// Issuer is the iss of the user tokens: {authority}/{tenant}/v2.0.
func (s *Server) Issuer() string { return s.Authority() + "/" + s.dir.tenantID + "/v2.0" }

// TenantID is the emulated tenant's id.
func (s *Server) TenantID() string { return s.dir.tenantID }

// UserTokenOption adjusts a token minted by Server.UserToken.
type UserTokenOption func(*userToken)

type userToken struct {
	claims jwt.MapClaims
	key    *rsa.PrivateKey // nil: the emulator's
	none   bool
}

// UserScopes sets scp, the delegated permissions (default access_as_user).
func UserScopes(scopes ...string) UserTokenOption {
	return func(u *userToken) { u.claims["scp"] = strings.Join(scopes, " ") }
}

// UserMFA adds mfa to amr: the user signed in with multi-factor
// authentication, which the exchanged Graph token keeps.
func UserMFA() UserTokenOption {
	return func(u *userToken) { u.claims["amr"] = []string{"pwd", "mfa"} }
}

// UserACRS sets acrs, the authentication contexts the sign-in satisfied.
func UserACRS(ids ...string) UserTokenOption {
	return func(u *userToken) { u.claims["acrs"] = ids }
}

// UserLifetime sets the token's lifetime from now on the emulator's clock
// (default one hour); a negative one gives an expired token.
func UserLifetime(d time.Duration) UserTokenOption {
	return func(u *userToken) {
		iat := u.claims["iat"].(int64)
		u.claims["exp"] = iat + int64(d/time.Second)
	}
}

// UserClaim sets any claim, for tokens that must be wrong in one way (a
// foreign tid, an issuer of another tenant); nil removes it.
func UserClaim(name string, v any) UserTokenOption {
	return func(u *userToken) {
		if v == nil {
			delete(u.claims, name)
		} else {
			u.claims[name] = v
		}
	}
}

// SignedBy signs with k instead of the emulator's key, still naming the
// emulator's kid: a forgery.
func SignedBy(k *rsa.PrivateKey) UserTokenOption { return func(u *userToken) { u.key = k } }

// Unsigned makes an "alg": "none" token.
func Unsigned() UserTokenOption { return func(u *userToken) { u.none = true } }

// UserToken mints an access token for user oid to call the app whose
// audience is aud (its identifier URI or client id), signed RS256 like
// Entra's v2.0 tokens.
func (s *Server) UserToken(oid, aud string, opts ...UserTokenOption) string {
	now := s.clock.Now().Unix()
	u := userToken{claims: jwt.MapClaims{
		"aud": aud, "iss": s.Issuer(), "iat": now, "nbf": now, "exp": now + int64(httpTokenLifetime/time.Second),
		"amr": []string{"pwd"}, "name": s.dir.users[strings.ToLower(oid)].Name, "oid": oid,
		"scp": "access_as_user", "sub": oid, "tid": s.dir.tenantID, "ver": "2.0", "azp": "pimtest-client",
	}}
	for _, o := range opts {
		o(&u)
	}
	if u.none {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, u.claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return tok
	}
	key := u.key
	if key == nil {
		key = s.signingKey()
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, u.claims)
	t.Header["kid"] = issuerKID
	tok, err := t.SignedString(key)
	if err != nil {
		panic(fmt.Sprintf("pimtest: sign: %v", err)) // an RSA key signs
	}
	return tok
}

// serveIssuer answers the sign-in service's paths under /{tenant}/.
func (s *Server) serveIssuer(ex *exchange) {
	switch strings.TrimPrefix(ex.r.URL.Path, "/"+s.dir.tenantID) {
	case "/v2.0/.well-known/openid-configuration":
		if checkMethod(ex, http.MethodGet) {
			s.oidcMetadata(ex)
		}
	case "/discovery/v2.0/keys":
		if checkMethod(ex, http.MethodGet) {
			k := &s.signingKey().PublicKey
			ex.writeJSON(http.StatusOK, map[string]any{"keys": []map[string]string{{
				"kty": "RSA", "use": "sig", "kid": issuerKID,
				"n": b64.EncodeToString(k.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
			}}})
		}
	case "/oauth2/v2.0/token":
		if checkMethod(ex, http.MethodPost) {
			s.tokenEndpoint(ex)
		}
	default:
		ex.fail(&graphError{http.StatusNotFound, "NotFound", "No such sign-in endpoint: " + ex.r.URL.Path})
	}
}

func (s *Server) oidcMetadata(ex *exchange) {
	base := issuerBase(ex.r, s.dir.tenantID)
	ex.writeJSON(http.StatusOK, map[string]any{
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"tenant_region_scope":                   "EU",
	})
}

// issuerBase is the tenant's sign-in URL as the client reached it.
func issuerBase(r *http.Request, tenant string) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + "/" + tenant
}

// tokenEndpointURL is the audience Entra requires of a client assertion.
func tokenEndpointURL(r *http.Request, tenant string) string {
	return issuerBase(r, tenant) + "/oauth2/v2.0/token"
}

// oauthError is Entra's token endpoint error shape.
func (s *Server) oauthError(ex *exchange, status int, code string, aadsts int, msg string) {
	s.oauthErrorClaims(ex, status, code, aadsts, msg, "")
}

// oauthErrorClaims is oauthError carrying the claims the user must sign in
// for, as Entra's interaction_required answers do.
func (s *Server) oauthErrorClaims(ex *exchange, status int, code string, aadsts int, msg, claims string) {
	body := map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, msg, ex.reqID, ex.clientReqID, s.clock.Now().UTC().Format("2006-01-02 15:04:05Z")),
		"error_codes":       []int{aadsts},
		"timestamp":         s.clock.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":          ex.reqID,
		"correlation_id":    ex.clientReqID,
	}
	if claims != "" {
		body["claims"] = claims
	}
	ex.writeJSON(status, body)
}

// tokenEndpoint answers the on-behalf-of grant: the app, authenticated by
// its secret, presents a user's token for itself and gets a Graph token
// for that user.
func (s *Server) tokenEndpoint(ex *exchange) {
	ex.r.Body = http.MaxBytesReader(ex.w, ex.r.Body, maxRequestBytes)
	if err := ex.r.ParseForm(); err != nil {
		s.oauthError(ex, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded: "+err.Error())
		return
	}
	f := ex.r.PostForm
	if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || f.Get("requested_token_use") != "on_behalf_of" {
		s.oauthError(ex, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type; the emulator answers only the on-behalf-of grant.")
		return
	}
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if id, sec, ok := ex.r.BasicAuth(); ok {
		clientID, secret = id, sec
	}
	app, ok := s.app(clientID)
	if !ok {
		s.oauthError(ex, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory.", clientID))
		return
	}
	if assertion := f.Get("client_assertion"); assertion != "" || f.Has("client_assertion_type") {
		if secret != "" {
			s.oauthError(ex, http.StatusBadRequest, "invalid_request", 90023, "The request presents both a client secret and a client assertion; send one.")
			return
		}
		if f.Get("client_assertion_type") != clientAssertionType {
			s.oauthError(ex, http.StatusBadRequest, "invalid_request", 50027, "client_assertion_type must be "+clientAssertionType+".")
			return
		}
		if err := s.verifyClientAssertion(assertion, app, tokenEndpointURL(ex.r, s.dir.tenantID)); err != nil {
			s.oauthError(ex, http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation or is not for this application: "+err.Error())
			return
		}
	} else if app.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(app.Secret)) != 1 {
		s.oauthError(ex, http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")
		return
	}
	forGraph := slices.ContainsFunc(strings.Fields(f.Get("scope")), func(sc string) bool { return strings.HasPrefix(sc, "https://graph.microsoft.com/") })
	forARM := slices.ContainsFunc(strings.Fields(f.Get("scope")), func(sc string) bool { return strings.HasPrefix(sc, armAudience+"/") })
	if forGraph == forARM {
		s.oauthError(ex, http.StatusBadRequest, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid: ask for https://graph.microsoft.com/.default or https://management.azure.com/.default.")
		return
	}
	c, err := s.verifyUserToken(f.Get("assertion"), app)
	if err != nil {
		s.oauthError(ex, http.StatusBadRequest, "invalid_grant", 50013, "Assertion failed signature validation or is not for this application: "+err.Error())
		return
	}
	want, err := parseClaimsRequest(f.Get("claims"))
	if err != nil {
		s.oauthError(ex, http.StatusBadRequest, "invalid_request", 90014, "The claims parameter is not valid JSON: "+err.Error())
		return
	}
	if unmet := want.unmetBy(c); unmet != "" {
		// The exchanged token can show only what the user's own sign-in
		// did: the app must send the user back to sign in for the claims.
		s.oauthErrorClaims(ex, http.StatusBadRequest, "interaction_required", 50076,
			"Due to a configuration change made by your administrator, or because you moved to a new location, you must "+unmet+" to access '"+app.ClientID+"'.", want.challenge())
		return
	}
	opts := []TokenOption{WithTokenLifetime(httpTokenLifetime)}
	if c.mfa {
		opts = append(opts, WithMFA())
	}
	if len(want.acrs) > 0 {
		// Entra adds acrs to a token only when the request asked for it.
		opts = append(opts, WithACRS(want.acrs...))
	}
	// Entra names the granted permissions under the resource and echoes
	// the .default asked for; MSAL treats a requested scope missing from
	// the answer as declined.
	granted := strings.Fields(f.Get("scope"))
	if forARM {
		opts = append(opts, WithARMAudience())
		granted = append(granted, armAudience+"/user_impersonation")
	} else {
		for _, p := range strings.Fields(graphScopes) {
			granted = append(granted, "https://graph.microsoft.com/"+p)
		}
	}
	ex.writeJSON(http.StatusOK, map[string]any{
		"token_type": "Bearer", "scope": strings.Join(granted, " "), "expires_in": int(httpTokenLifetime / time.Second),
		"ext_expires_in": int(httpTokenLifetime / time.Second), "access_token": s.Token(c.oid, opts...),
	})
}

func (s *Server) app(clientID string) (App, bool) {
	s.issuer.mu.Lock()
	defer s.issuer.mu.Unlock()
	i := slices.IndexFunc(s.issuer.apps, func(a App) bool { return a.ClientID != "" && a.ClientID == clientID })
	if i < 0 {
		return App{}, false
	}
	return s.issuer.apps[i], true
}

// verifyUserToken checks a user token presented for app, as Entra does
// before an exchange.
func (s *Server) verifyUserToken(raw string, app App) (caller, error) {
	auds := []string{app.ClientID}
	if app.IdentifierURI != "" {
		auds = append(auds, app.IdentifierURI)
	}
	var mc jwt.MapClaims
	_, err := jwt.ParseWithClaims(raw, &mc, func(*jwt.Token) (any, error) { return &s.signingKey().PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(auds...), jwt.WithIssuer(s.Issuer()),
		jwt.WithTimeFunc(s.clock.Now), jwt.WithExpirationRequired())
	if err != nil {
		return caller{}, err
	}
	oid, _ := mc["oid"].(string)
	if tid, _ := mc["tid"].(string); tid != s.dir.tenantID || oid == "" {
		return caller{}, fmt.Errorf("the token is not a user token of tenant %s", s.dir.tenantID)
	}
	amr, _ := mc["amr"].([]any)
	c := caller{oid: strings.ToLower(oid), mfa: slices.Contains(amr, any("mfa"))}
	acrs, _ := mc["acrs"].([]any)
	for _, a := range acrs {
		if v, ok := a.(string); ok {
			c.acrs = append(c.acrs, v)
		}
	}
	return c, nil
}
