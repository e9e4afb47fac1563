package authn

import (
	"context"
	"encoding/base64"
	"net/http"
	"sync"
)

// stepUp is a request's pending claims challenge: set while the request is
// served, turned into its answer's status by the sessionRecorder.
type stepUp struct {
	mu     sync.Mutex
	claims string // the claims request (JSON) the caller's token must meet
	why    string
	begun  bool // the answer's status is sent
}

type stepUpKey struct{}

// RequireClaims asks that the guarded request behind ctx be answered 401
// with an Entra claims challenge (WWW-Authenticate: Bearer
// error="insufficient_claims", claims="<base64>"), the step-up a client
// meets by signing its user in again for claims: a role whose activation
// needs MFA or an authentication context the caller's token does not show.
// The answer's body (the call's JSON-RPC answer, saying why) is kept. It
// reports whether the request can still be so answered: false outside the
// guard, or once the answer has begun (an event stream already sent
// progress), when only the body can tell the client.
func RequireClaims(ctx context.Context, claims, why string) bool {
	s, ok := ctx.Value(stepUpKey{}).(*stepUp)
	if !ok || claims == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.begun {
		return false
	}
	s.claims, s.why = claims, why
	return true
}

// begin returns the pending challenge, if any, as the answer's status is
// sent: none can be asked for after.
func (s *stepUp) begin() (claims, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.begun = true
	return s.claims, s.why
}

// challengeClaims turns an answer about to be a success into the 401 of a
// pending claims challenge, and returns the status to send.
func (s *sessionRecorder) challengeClaims(code int) int {
	claims, why := s.stepUp.begin()
	if claims == "" || code >= http.StatusMultipleChoices {
		return code
	}
	s.Header().Set("WWW-Authenticate", s.g.authenticate(s.req, "insufficient_claims", why)+`, claims="`+base64.StdEncoding.EncodeToString([]byte(claims))+`"`)
	return http.StatusUnauthorized
}
