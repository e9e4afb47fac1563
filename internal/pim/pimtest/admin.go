package pimtest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// serveAdmin is the emulator's own surface, on a path Graph does not use:
// token minting for the scenario's users and the approver's actions.
//
//	POST /_emulator/token                  {"oid": "...", "mfa": true}  (or "name"; "resource": "arm" for an ARM token)
//	GET  /_emulator/requests[?status=S]    every request (directory roles' and groups'), Graph-shaped
//	POST /_emulator/requests/{id}/approve  204
//	POST /_emulator/requests/{id}/deny     204
//	POST /_emulator/assignments/revoke     {"principal": "...", "role": "..."}  204
func (s *Server) serveAdmin(ex *exchange) {
	rest := strings.Trim(strings.TrimPrefix(ex.r.URL.Path, "/_emulator/"), "/")
	segs := strings.Split(rest, "/")
	switch {
	case rest == "token":
		if checkMethod(ex, http.MethodPost) {
			s.adminToken(ex)
		}
	case rest == "requests":
		if checkMethod(ex, http.MethodGet) {
			s.adminRequests(ex)
		}
	case len(segs) == 3 && segs[0] == "requests" && (segs[2] == "approve" || segs[2] == "deny"):
		if checkMethod(ex, http.MethodPost) {
			s.adminDecide(ex, segs[1], segs[2] == "approve")
		}
	case rest == "assignments/revoke":
		if checkMethod(ex, http.MethodPost) {
			s.adminRevoke(ex)
		}
	default:
		ex.fail(&graphError{http.StatusNotFound, "NotFound", "No such emulator endpoint: " + ex.r.URL.Path})
	}
}

func (s *Server) adminToken(ex *exchange) {
	var req tokenRequest
	if err := json.NewDecoder(io.LimitReader(ex.r.Body, maxRequestBytes)).Decode(&req); err != nil {
		ex.fail(&graphError{http.StatusBadRequest, "BadRequest", "body must be JSON like {\"oid\":\"...\",\"mfa\":true}: " + err.Error()})
		return
	}
	oid := strings.ToLower(req.OID)
	if oid == "" {
		oid = s.dir.byName[strings.ToLower(req.Name)]
	}
	if _, ok := s.dir.users[oid]; !ok {
		ex.fail(&graphError{http.StatusBadRequest, "SubjectNotFound", "no scenario user has that oid or name"})
		return
	}
	opts := []TokenOption{WithTokenLifetime(httpTokenLifetime)}
	if req.MFA {
		opts = append(opts, WithMFA())
	}
	switch req.Resource {
	case "", "graph":
	case "arm":
		opts = append(opts, WithARMAudience())
	default:
		ex.fail(&graphError{http.StatusBadRequest, "BadRequest", "resource must be graph or arm"})
		return
	}
	ex.writeJSON(http.StatusOK, tokenResponse{
		AccessToken: s.Token(oid, opts...),
		TokenType:   "Bearer",
		ExpiresIn:   int(httpTokenLifetime.Seconds()),
	})
}

func (s *Server) adminRequests(ex *exchange) {
	status := ex.r.URL.Query().Get("status")
	s.mu.Lock()
	s.st.settle(s.clock.Now())
	out := []any{}
	for _, r := range s.st.requests {
		switch {
		case status != "" && !strings.EqualFold(status, r.Status):
		case r.target().isGroup():
			out = append(out, r.groupJSON())
		case r.target().isARM():
			out = append(out, r.armJSON())
		default:
			out = append(out, r.json())
		}
	}
	s.mu.Unlock()
	ex.writeJSON(http.StatusOK, struct {
		Value []any `json:"value"`
	}{out})
}

func (s *Server) adminDecide(ex *exchange, id string, approve bool) {
	err := s.decide(id, approve)
	switch {
	case err == nil:
		ex.w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrNotFound):
		ex.fail(errRequestNotFound(id))
	default:
		ex.fail(&graphError{http.StatusConflict, "InvalidRequestStatus", err.Error()})
	}
}

func (s *Server) adminRevoke(ex *exchange) {
	var req struct {
		Principal string `json:"principal"`
		Role      string `json:"role"`
	}
	if err := json.NewDecoder(io.LimitReader(ex.r.Body, maxRequestBytes)).Decode(&req); err != nil {
		ex.fail(&graphError{http.StatusBadRequest, "BadRequest", "body must be JSON like {\"principal\":\"...\",\"role\":\"...\"}: " + err.Error()})
		return
	}
	err := s.Revoke(req.Principal, req.Role)
	switch {
	case err == nil:
		ex.w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrNotActive):
		ex.fail(&graphError{http.StatusNotFound, "RoleAssignmentDoesNotExist", err.Error()})
	default:
		ex.fail(&graphError{http.StatusBadRequest, "BadRequest", err.Error()})
	}
}
