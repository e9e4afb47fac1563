package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/authn"
	"github.com/mcp-gate/mcp-gate/internal/policy"

	"github.com/mcp-gate/mcp-gate/internal/loopback"
)

// Paths the page is served under.
const (
	PagePath   = "/ui/"
	APIPath    = "/ui/api/"
	EventsPath = "/ui/api/events"
)

// DefaultMaxStreams bounds the event streams open at once.
const DefaultMaxStreams = 32

// heartbeat is how often an idle event stream sends a comment, so that a
// client (or a proxy) gone away is noticed and a live one is not cut.
const heartbeat = 25 * time.Second

//go:embed static
var static embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string { return now.Sub(t).Round(time.Second).String() },
	"left": func(now, t time.Time) string {
		return max(t.Sub(now), 0).Round(time.Second).String()
	},
	"secs": func(a, b time.Time) int64 { return max(int64(b.Sub(a).Seconds()), 0) },
	"ms":   func(t time.Time) int64 { return t.UnixMilli() },
	"at":   func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"target": func(kind, role, scope, access string) string {
		switch kind {
		case policy.KindGroup.String():
			return fmt.Sprintf("group %s (%s)", role, access)
		case policy.KindAzureRole.String():
			return fmt.Sprintf("Azure role %s at %s", role, scope)
		}
		return role
	},
}).ParseFS(static, "static/page.html"))

// TokenValidator checks a bearer token; *authn.Validator is one.
type TokenValidator interface {
	Validate(ctx context.Context, raw string) (authn.Identity, error)
}

// ServerConfig holds a page server's dependencies.
type ServerConfig struct {
	Board *Board
	// Validator, when set (serve.auth), admits only requests with a valid
	// token, and shows each viewer only their own items.
	Validator TokenValidator
	// Scope, with Validator, is the scope tokens must grant (its last path
	// segment in scp), as serve.auth.scope; empty: any.
	Scope string
	// AdminRole is the app role whose holders see everyone's items.
	AdminRole  string
	MaxStreams int // DefaultMaxStreams when 0
	Logger     *slog.Logger
}

// Server serves the page, its JSON and its event stream.
type Server struct {
	cfg     ServerConfig
	need    string
	log     *slog.Logger
	streams chan struct{} // one token per open stream
	mux     *http.ServeMux
}

// NewServer returns the page's handler.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	s := &Server{cfg: cfg, log: cfg.Logger, streams: make(chan struct{}, cfg.MaxStreams), mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.need = cfg.Scope[strings.LastIndex(cfg.Scope, "/")+1:]
	sub, _ := fs.Sub(static, "static") // the directory is embedded: cannot fail
	s.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(sub)))
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, PagePath, http.StatusFound) })
	s.mux.HandleFunc("GET "+PagePath+"{$}", s.servePage)
	s.mux.HandleFunc("GET "+APIPath+"waiting", s.api(func(st State) any { return st.Waiting }))
	s.mux.HandleFunc("GET "+APIPath+"granted", s.api(func(st State) any { return st.Granted }))
	s.mux.HandleFunc("GET "+APIPath+"decided", s.api(func(st State) any { return st.Decided }))
	s.mux.HandleFunc("GET "+EventsPath, s.serveEvents)
	return s
}

// viewerKey finds the request's Viewer in its context.
type viewerKey struct{}

// ServeHTTP refuses what the guard refuses, then serves.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if msg := refused(r); msg != "" {
		http.Error(w, msg, http.StatusForbidden)
		return
	}
	v, status, msg := s.viewer(r)
	if status != 0 {
		if status == http.StatusUnauthorized {
			h.Set("WWW-Authenticate", `Bearer realm="mcp-gate"`)
		}
		http.Error(w, msg, status)
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), viewerKey{}, v)))
}

// refused says why a request is not for this page: a browser request from
// another site (Origin), or a request that reached a loopback listener
// under a name that is not loopback (DNS rebinding). Empty: none.
func refused(r *http.Request) string {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return "Forbidden: cross-origin request"
		}
	}
	if loopback.Rebound(r) {
		return "Forbidden: invalid Host header"
	}
	return ""
}

// viewer is who asks, or the status and sentence that refuse them.
func (s *Server) viewer(r *http.Request) (Viewer, int, string) {
	if s.cfg.Validator == nil {
		return Viewer{All: true}, 0, ""
	}
	scheme, raw, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return Viewer{}, http.StatusUnauthorized, "Unauthorized: " + authn.ErrNoToken.Error()
	}
	id, err := s.cfg.Validator.Validate(r.Context(), strings.TrimSpace(raw))
	var bad *authn.Error
	switch {
	case errors.As(err, &bad):
		return Viewer{}, http.StatusUnauthorized, "Unauthorized: " + bad.Error()
	case err != nil:
		s.log.Warn("approvals page: cannot validate tokens", "error", err)
		return Viewer{}, http.StatusServiceUnavailable, "Service unavailable: the gate cannot check tokens now; try again shortly"
	case s.need != "" && !id.HasScope(s.need):
		return Viewer{}, http.StatusForbidden, fmt.Sprintf("Forbidden: the token does not grant the scope %s", s.cfg.Scope)
	}
	return Viewer{Principal: id.OID, All: s.cfg.AdminRole != "" && slices.Contains(id.Roles, s.cfg.AdminRole)}, 0, ""
}

func viewerOf(r *http.Request) Viewer {
	v, _ := r.Context().Value(viewerKey{}).(Viewer)
	return v
}

// filterOf reads the decisions' filter from the query.
func filterOf(r *http.Request) Filter {
	q := r.URL.Query()
	return Filter{Tool: q.Get("tool"), Role: q.Get("role"), Outcome: q.Get("outcome"), Trace: q.Get("trace")}
}

func (s *Server) api(view func(State) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := s.cfg.Board.State(viewerOf(r), filterOf(r))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(view(st))
	}
}

// pageData is what the template renders.
type pageData struct {
	State
	Filter   Filter
	Viewer   Viewer
	Outcomes []string
}

func (s *Server) data(r *http.Request) pageData {
	v, f := viewerOf(r), filterOf(r)
	return pageData{State: s.cfg.Board.State(v, f), Filter: f, Viewer: v, Outcomes: outcomes}
}

// outcomes are the outcomes the filter offers.
var outcomes = []string{"admitted", "forwarded", "refused", "receipt", "cancelled", "error"}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, s.data(r)); err != nil {
		s.log.Warn("approvals page: render", "error", err)
	}
}

// fragments are the page's three table bodies, rendered as the page
// renders them, for the event stream.
type fragments struct {
	Waiting string `json:"waiting"`
	Granted string `json:"granted"`
	Decided string `json:"decided"`
}

// event is one message of the stream: the state, and its table bodies.
type event struct {
	State
	HTML fragments `json:"html"`
}

func (s *Server) render(d pageData) (event, error) {
	var out [3]strings.Builder
	for i, name := range []string{"waiting-rows", "granted-rows", "decided-rows"} {
		if err := page.ExecuteTemplate(&out[i], name, d); err != nil {
			return event{}, err
		}
	}
	return event{State: d.State, HTML: fragments{out[0].String(), out[1].String(), out[2].String()}}, nil
}

// serveEvents streams the state as server-sent events: one "state" event
// at once and one after each change, never more than the board changes.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		w.Header().Set("Retry-After", "30")
		http.Error(w, fmt.Sprintf("Service unavailable: %d event streams are open already; close a page or retry later", cap(s.streams)), http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		changed := s.cfg.Board.Changed()
		ev, err := s.render(s.data(r))
		if err != nil {
			s.log.Warn("approvals page: render", "error", err)
			return
		}
		b, _ := json.Marshal(ev) // plain data: cannot fail
		if !send(w, rc, "event: state\ndata: "+string(b)+"\n\n") {
			return
		}
		for waiting := true; waiting; {
			select {
			case <-r.Context().Done():
				return
			case <-changed:
				waiting = false
			case <-beat.C:
				if !send(w, rc, ": still here\n\n") {
					return
				}
			}
		}
	}
}

// send writes one piece of the stream and flushes it to the client.
func send(w http.ResponseWriter, rc *http.ResponseController, s string) bool {
	_, err := fmt.Fprint(w, s)
	return err == nil && rc.Flush() == nil
}
