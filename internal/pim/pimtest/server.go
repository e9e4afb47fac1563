// Package pimtest is a local stand-in for the Microsoft Graph v1.0
// Privileged Identity Management endpoints for directory roles and PIM for
// Groups, so that the PIM client, the gate and the demo can run without an
// Entra tenant.
//
// It serves the documented request, instance, eligibility and role
// definition resources with Graph's JSON shapes and OData errors, validates
// self-activation requests against each role's rules, moves requests through
// their statuses on the injected clock, and injects faults (throttling, 5xx,
// latency, dropped connections) on demand. An admin surface under
// /_emulator/ mints tokens and plays the approver.
package pimtest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Clock is the time source for status transitions, expiry and tokens.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Option configures a Server.
type Option func(*Server)

// WithClock drives transitions and expiry from c instead of the system clock.
func WithClock(c Clock) Option { return func(s *Server) { s.clock = c } }

// WithLogger logs each request served (method, path, status; never tokens).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithPlainHTTP serves http instead of https; Start then refuses any
// address that is not loopback.
func WithPlainHTTP() Option { return func(s *Server) { s.plain = true } }

// Server is the emulator. It is safe for concurrent use.
type Server struct {
	clock    Clock
	log      *slog.Logger
	plain    bool
	tokenKey []byte

	mu     sync.Mutex // guards st
	st     *state
	dir    *directory
	faults faultState

	hits      atomic.Int64
	creates   atomic.Int64
	dropReply atomic.Bool

	srv   *http.Server
	url   string
	caPEM []byte

	issuer issuerState // the tenant's sign-in service (issuer.go)
}

// faultState is the active fault plan and its counters.
type faultState struct {
	mu  sync.Mutex
	f   Faults
	n   int
	rng *mrand.Rand
}

// NewServer validates the scenario and builds an emulator; call Start to
// serve it.
func NewServer(sc Scenario, opts ...Option) (*Server, error) {
	dir, err := sc.normalize()
	if err != nil {
		return nil, fmt.Errorf("pimtest: scenario: %w", err)
	}
	s := &Server{clock: realClock{}, log: slog.New(slog.DiscardHandler), dir: dir, tokenKey: make([]byte, 32)}
	for _, o := range opts {
		o(s)
	}
	_, _ = rand.Read(s.tokenKey) // crypto/rand does not fail
	s.st = newState(dir, s.clock.Now())
	s.SetFaults(sc.Faults)
	return s, nil
}

// Start listens on addr (typically "127.0.0.1:0") and serves in the
// background: https with a fresh CA, or http on loopback with WithPlainHTTP.
func (s *Server) Start(addr string) error {
	if s.srv != nil {
		return errors.New("pimtest: server already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pimtest: listen: %w", err)
	}
	tcp, _ := ln.Addr().(*net.TCPAddr)
	if s.plain && (tcp == nil || !tcp.IP.IsLoopback()) {
		ln.Close()
		return fmt.Errorf("pimtest: plain http only on a loopback address, not %s", ln.Addr())
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	scheme := "http"
	if !s.plain {
		cert, caPEM, err := newLoopbackCert()
		if err != nil {
			ln.Close()
			return fmt.Errorf("pimtest: %w", err)
		}
		s.caPEM = caPEM
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	s.url = scheme + "://" + ln.Addr().String() + apiVersion
	go func() {
		var err error
		if s.plain {
			err = s.srv.Serve(ln)
		} else {
			err = s.srv.ServeTLS(ln, "", "")
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("pim emulator stopped", "err", err)
		}
	}()
	return nil
}

// URL is the Graph base URL including the version, e.g.
// https://127.0.0.1:43123/v1.0. Empty before Start.
func (s *Server) URL() string { return s.url }

// CACertPEM is the CA certificate the server's TLS certificate chains to;
// nil for plain http or before Start.
func (s *Server) CACertPEM() []byte { return s.caPEM }

// Close stops serving at once, dropping open connections.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Shutdown stops serving after in-flight requests finish or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

// Token mints a bearer token for oid (see WithTokenLifetime for how long it
// lasts). Any oid is accepted so tests can reach SubjectNotFound.
func (s *Server) Token(oid string, opts ...TokenOption) string {
	now := s.clock.Now()
	c := tokenClaims{
		Aud: graphAudience, Iss: "https://sts.windows.net/" + s.dir.tenantID + "/",
		IAT: now.Unix(), NBF: now.Unix(), Exp: now.Add(goTokenLifetime).Unix(),
		AMR: []string{"pwd"}, Name: s.dir.users[strings.ToLower(oid)].Name,
		OID: oid, Scp: graphScopes, Sub: oid, TID: s.dir.tenantID, Ver: "1.0",
	}
	for _, o := range opts {
		o(&c)
	}
	return mintToken(s.tokenKey, c)
}

// Approve approves a request pending approval; its assignment starts now
// (or at its requested start, if later).
func (s *Server) Approve(requestID string) error { return s.decide(requestID, true) }

// Deny denies a request pending approval.
func (s *Server) Deny(requestID string) error { return s.decide(requestID, false) }

func (s *Server) decide(id string, approve bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.decide(id, approve, s.clock.Now())
}

// Requests lists every schedule request created, in order, with statuses
// as of now.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.snapshot(s.clock.Now())
}

// CreateCount is how many create POSTs produced a request object.
func (s *Server) CreateCount() int { return int(s.creates.Load()) }

// HitCount is how many Graph API requests arrived, faulted ones included
// (admin paths under /_emulator/ are not counted).
func (s *Server) HitCount() int { return int(s.hits.Load()) }

// DropNextCreateReply makes the next create POST that succeeds record its
// request and then close the connection without replying, as when a reply
// is lost in transit.
func (s *Server) DropNextCreateReply() { s.dropReply.Store(true) }

// SetFaults replaces the fault plan and restarts its counters and random
// sequence, so "every Nth request" counts from this call.
func (s *Server) SetFaults(f Faults) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.f = f
	s.faults.n = 0
	s.faults.rng = mrand.New(mrand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
}

// faultPlan is the fault plan in force.
func (s *Server) faultPlan() Faults {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.f
}

// Revoke ends principal's live (or scheduled) assignments of role, an id
// or display name, now: what an administrator does with Remove on an
// active assignment in the Entra portal. Graph records that as an
// adminRemove request with status Revoked; the request that made the
// assignment stays Provisioned. ErrNotActive when there is none.
func (s *Server) Revoke(principal, role string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.revoke(strings.ToLower(principal), role, s.clock.Now())
}

// fault is what to do to one Graph request.
type fault int

const (
	faultNone fault = iota
	faultDrop
	faultThrottle
	faultError
)

func (s *Server) nextFault() (fault, Faults) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	fs := &s.faults
	fs.n++
	switch f := fs.f; {
	case f.DropEvery > 0 && fs.n%f.DropEvery == 0:
		return faultDrop, f
	case f.ThrottleEvery > 0 && fs.n%f.ThrottleEvery == 0:
		return faultThrottle, f
	case f.ErrorRate > 0 && fs.rng.Float64() < f.ErrorRate:
		return faultError, f
	default:
		return faultNone, f
	}
}

const apiVersion = "/v1.0"

// ServeHTTP routes Graph paths under /v1.0 and the admin surface under
// /_emulator/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	reqID := newID()
	clientReqID := r.Header.Get("client-request-id")
	if clientReqID == "" {
		clientReqID = reqID
	}
	rec.Header().Set("request-id", reqID)
	rec.Header().Set("client-request-id", clientReqID)
	ex := &exchange{s: s, w: rec, r: r, reqID: reqID, clientReqID: clientReqID}
	defer func() {
		s.log.Info("pim emulator", "method", r.Method, "path", r.URL.Path, "status", rec.status, "request-id", reqID)
	}()
	switch {
	case strings.HasPrefix(r.URL.Path, "/_emulator/"):
		s.serveAdmin(ex)
	case r.URL.Path == apiVersion || strings.HasPrefix(r.URL.Path, apiVersion+"/"):
		s.hits.Add(1)
		if s.injectFault(ex) {
			return
		}
		s.serveGraph(ex)
	case isARMPath(r.URL.Path):
		s.hits.Add(1)
		ex.arm = true
		rec.Header().Set("x-ms-request-id", reqID)
		rec.Header().Set("x-ms-correlation-request-id", reqID)
		if s.injectFault(ex) {
			return
		}
		s.serveARM(ex)
	case strings.HasPrefix(r.URL.Path, "/"+s.dir.tenantID+"/"):
		s.serveIssuer(ex)
	default:
		ex.fail(&graphError{http.StatusNotFound, "BadRequest", fmt.Sprintf("Invalid version: %s", firstSegment(r.URL.Path))})
	}
}

func firstSegment(p string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return seg
}

// injectFault applies the fault plan; true means the request was answered
// (or dropped) and must not be handled.
func (s *Server) injectFault(ex *exchange) bool {
	kind, f := s.nextFault()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-ex.r.Context().Done():
			t.Stop()
			return true
		}
	}
	switch kind {
	case faultDrop:
		ex.drop()
	case faultThrottle:
		if f.RetryAfter != "" {
			ex.w.Header().Set("Retry-After", f.RetryAfter)
		}
		ex.fail(&graphError{http.StatusTooManyRequests, "TooManyRequests", "Too many requests. Please retry after the time in the Retry-After header."})
	case faultError:
		status := f.ErrorStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if f.RetryAfter != "" {
			ex.w.Header().Set("Retry-After", f.RetryAfter)
		}
		ex.fail(&graphError{status, "ServiceUnavailable", "The service is temporarily unavailable. Please retry."})
	default:
		return false
	}
	return true
}

// recorder remembers the status for the log and unwraps for hijacking.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
