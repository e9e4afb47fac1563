package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
)

// MetadataPath is where RFC 9728 protected resource metadata is served; the
// document for the resource https://host/mcp is also at MetadataPath+"/mcp".
const MetadataPath = "/.well-known/oauth-protected-resource"

// sessionHeader is the Streamable HTTP session id header.
const sessionHeader = "Mcp-Session-Id"

// DefaultMaxSessions bounds the sessions whose owner is remembered.
const DefaultMaxSessions = 1 << 16

// GuardConfig configures a Guard.
type GuardConfig struct {
	Validator *Validator
	// Endpoint is the MCP endpoint's path (/mcp): the only path served
	// behind the guard, apart from the metadata.
	Endpoint string
	// Scope is the scope clients request (api://…/mcp.tools); tokens must
	// carry its last path segment in scp. Empty: no scope is required.
	Scope string
	// Resource is the endpoint's public URL; empty: built from each
	// request's Host, which is right unless a proxy rewrites it.
	Resource string
	// MaxSessions bounds the sessions whose owner is remembered
	// (DefaultMaxSessions when 0); past it the least recently used is
	// forgotten, and its next request is answered 404 (the client opens a
	// new session), never admitted unowned.
	MaxSessions int
	Logger      *slog.Logger
}

// Guard makes an MCP endpoint an OAuth protected resource: every request
// must carry a valid Entra access token, and a session belongs to the
// principal who opened it. It is safe for concurrent use.
type Guard struct {
	cfg   GuardConfig
	need  string // the scp value Scope grants
	log   *slog.Logger
	owner *lru.Cache[string, string] // Mcp-Session-Id -> oid of the principal who opened it
}

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	owners, _ := lru.New[string, string](cfg.MaxSessions) // a positive size cannot fail
	g := &Guard{cfg: cfg, log: cfg.Logger, owner: owners}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.need = cfg.Scope[strings.LastIndex(cfg.Scope, "/")+1:]
	return g
}

type identityKey struct{}
type tokenKey struct{}

// IdentityFrom returns the validated caller of the request behind ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// TokenFrom returns the caller's access token, for an on-behalf-of
// exchange. It lives only in the request's context: the request itself no
// longer carries it, so nothing can forward or log it by accident.
func TokenFrom(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(tokenKey{}).(string)
	return t, ok && t != ""
}

// Wrap guards next.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == MetadataPath || p == MetadataPath+g.cfg.Endpoint:
			g.serveMetadata(w, r)
			return
		case p != g.cfg.Endpoint:
			http.Error(w, fmt.Sprintf("Not found: with serve.auth set, MCP is served over Streamable HTTP at %s only", g.cfg.Endpoint), http.StatusNotFound)
			return
		}
		raw, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			g.challenge(w, r, http.StatusUnauthorized, "", ErrNoToken.Error())
			return
		}
		id, err := g.cfg.Validator.Validate(r.Context(), raw)
		var bad *Error
		switch {
		case errors.As(err, &bad):
			g.log.Info("refused an HTTP request: invalid token", "reason", bad.Reason)
			g.challenge(w, r, http.StatusUnauthorized, "invalid_token", bad.Error())
			return
		case err != nil:
			g.log.Warn("cannot validate tokens", "error", err)
			http.Error(w, "Service unavailable: the gate cannot check tokens now ("+err.Error()+"); try again shortly", http.StatusServiceUnavailable)
			return
		case g.need != "" && !id.HasScope(g.need):
			g.challenge(w, r, http.StatusForbidden, "insufficient_scope", fmt.Sprintf("the token does not grant the scope %s: request it when signing in", g.cfg.Scope))
			return
		}
		sid := r.Header.Get(sessionHeader)
		if sid != "" {
			owner, known := g.owner.Get(sid)
			if !known {
				// Every session opened through the guard has an owner; one
				// without is none of this gate's, or gone.
				http.Error(w, "Not found: no such MCP session; open a session (initialize) with your token", http.StatusNotFound)
				return
			}
			if owner != id.OID {
				g.log.Warn("refused a request on another principal's session", "principal", id.OID)
				http.Error(w, "Forbidden: this MCP session was opened by another user; open your own session (initialize) with your token", http.StatusForbidden)
				return
			}
		}
		r.Header.Del("Authorization")
		su := &stepUp{}
		ctx := context.WithValue(context.WithValue(context.WithValue(r.Context(), identityKey{}, id), tokenKey{}, raw), stepUpKey{}, su)
		next.ServeHTTP(&sessionRecorder{ResponseWriter: w, g: g, req: r, sid: sid, oid: id.OID, stepUp: su}, r.WithContext(ctx))
	})
}

// bearer extracts a bearer token (RFC 6750: the scheme is case-insensitive).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// resource is the protected resource's URL.
func (g *Guard) resource(r *http.Request) string {
	if g.cfg.Resource != "" {
		return g.cfg.Resource
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + g.cfg.Endpoint
}

// metadataURL is where the resource's metadata is (RFC 9728 §3.1: the
// well-known path inserted before the resource's path).
func (g *Guard) metadataURL(r *http.Request) string {
	res := g.resource(r)
	scheme, rest, _ := strings.Cut(res, "://")
	host, path, _ := strings.Cut(rest, "/")
	if path != "" {
		path = "/" + path
	}
	return scheme + "://" + host + MetadataPath + path
}

// challenge refuses a request, telling the client where to sign in.
func (g *Guard) challenge(w http.ResponseWriter, r *http.Request, status int, code, why string) {
	w.Header().Set("WWW-Authenticate", g.authenticate(r, code, why))
	text := "Unauthorized: " + why
	if status == http.StatusForbidden {
		text = "Forbidden: " + why
	}
	http.Error(w, text, status)
}

// authenticate is the WWW-Authenticate value telling the client where to
// sign in and, with code, what was wrong.
func (g *Guard) authenticate(r *http.Request, code, why string) string {
	v := `Bearer resource_metadata="` + g.metadataURL(r) + `"`
	if code != "" {
		v += `, error="` + code + `", error_description="` + quotable(why) + `"`
	}
	if g.cfg.Scope != "" {
		v += `, scope="` + quotable(g.cfg.Scope) + `"`
	}
	return v
}

// quotable makes s safe inside a quoted-string of a header value.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"' || r == '\\':
			return '\''
		case r < 0x20 || r > 0x7e:
			return -1
		}
		return r
	}, s)
}

// serveMetadata answers with the RFC 9728 document.
func (g *Guard) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method not allowed: GET the metadata", http.StatusMethodNotAllowed)
		return
	}
	doc := map[string]any{
		"resource":                 g.resource(r),
		"authorization_servers":    []string{g.cfg.Validator.AuthorizationServer()},
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "mcp-gate",
	}
	if g.cfg.Scope != "" {
		doc["scopes_supported"] = []string{g.cfg.Scope}
	}
	b, _ := json.Marshal(doc) // strings only
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(b)
}

// sessionRecorder notes who opened a session (the response to a request
// without a session id that names one) and forgets a session its owner
// deleted; it also sends a claims challenge the request's call asked for
// (RequireClaims) as the answer's status.
type sessionRecorder struct {
	http.ResponseWriter
	g        *Guard
	req      *http.Request
	sid, oid string
	stepUp   *stepUp
	done     bool
}

func (s *sessionRecorder) WriteHeader(code int) {
	if !s.done {
		s.done = true
		code = s.challengeClaims(code)
		s.record(code)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *sessionRecorder) Write(b []byte) (int, error) {
	if !s.done {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *sessionRecorder) record(code int) {
	switch {
	case s.sid == "" && code < 300:
		if opened := s.Header().Get(sessionHeader); opened != "" {
			// mcp-go names a fresh random session: first owner wins.
			s.g.owner.ContainsOrAdd(opened, s.oid)
		}
	case s.sid != "" && s.req.Method == http.MethodDelete && code < 300:
		s.g.owner.Remove(s.sid)
	}
}

// Flush streams: mcp-go flushes event streams as it writes them.
func (s *sessionRecorder) Flush() {
	if !s.done {
		s.WriteHeader(http.StatusOK)
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *sessionRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
