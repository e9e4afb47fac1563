package pimtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// exchange is one request being served.
type exchange struct {
	s                  *Server
	w                  http.ResponseWriter
	r                  *http.Request
	reqID, clientReqID string
	arm                bool // an ARM request: errors have ARM's shape
}

// base is the Graph root as the client addressed it, for absolute links.
func (ex *exchange) base() string {
	scheme := "https"
	if ex.r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + ex.r.Host + apiVersion
}

func (ex *exchange) metadata(fragment string) string { return ex.base() + "/$metadata#" + fragment }

func (ex *exchange) writeJSON(status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // our own structs: a bug, not a client error
		ex.fail(&graphError{http.StatusInternalServerError, "InternalServerError", err.Error()})
		return
	}
	h := ex.w.Header()
	h.Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	if ex.arm {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	ex.w.WriteHeader(status)
	_, _ = ex.w.Write(body)
}

func (ex *exchange) fail(e *graphError) {
	if ex.arm {
		ex.writeJSON(e.status, armErrorJSON{Error: armErrorDetail{Code: e.code, Message: e.message}})
		return
	}
	ex.writeJSON(e.status, errorJSON{Error: errorDetail{
		Code:    e.code,
		Message: e.message,
		InnerError: innerError{
			Date:            ex.s.clock.Now().UTC().Format("2006-01-02T15:04:05"),
			RequestID:       ex.reqID,
			ClientRequestID: ex.clientReqID,
		},
	}})
}

// drop closes the connection without a reply: hijacked on HTTP/1, the
// stream reset on HTTP/2 (which cannot be hijacked).
func (ex *exchange) drop() {
	if conn, _, err := http.NewResponseController(ex.w).Hijack(); err == nil {
		conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

const (
	dirPrefix       = "/roleManagement/directory/"
	currentUser     = "filterByCurrentUser(on='principal')"
	maxRequestBytes = 1 << 20
)

// serveGraph authenticates the caller and routes a Graph path.
func (s *Server) serveGraph(ex *exchange) {
	now := s.clock.Now()
	c, err := verifyToken(s.tokenKey, ex.r.Header.Get("Authorization"), now)
	if err != nil {
		ex.w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"`)
		ex.fail(&graphError{http.StatusUnauthorized, "InvalidAuthenticationToken", err.Error()})
		return
	}
	if c.aud != graphAudience {
		// Graph takes only tokens issued for it; an ARM token is refused.
		ex.w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"`)
		ex.fail(&graphError{http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."})
		return
	}
	path := strings.TrimPrefix(ex.r.URL.Path, apiVersion)
	if !authorized(ex, c, path) || s.servePolicies(ex, path) || s.serveGroups(ex, c, path) {
		return
	}
	rest, ok := strings.CutPrefix(path, dirPrefix)
	if !ok {
		ex.fail(notFoundSegment(firstSegment(path)))
		return
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	method := ex.r.Method
	switch {
	case segs[0] == "roleAssignmentScheduleRequests" && len(segs) == 1:
		switch method {
		case http.MethodPost:
			s.createRequest(ex, c)
		case http.MethodGet:
			s.listRequests(ex, c, false)
		default:
			ex.fail(methodNotAllowed(method))
		}
	case segs[0] == "roleAssignmentScheduleRequests" && len(segs) == 2 && isCurrentUser(segs[1]):
		if checkMethod(ex, http.MethodGet) && checkCurrentUser(ex, segs[1]) {
			s.listRequests(ex, c, true)
		}
	case segs[0] == "roleAssignmentScheduleRequests" && len(segs) == 2:
		if checkMethod(ex, http.MethodGet) {
			s.getRequest(ex, segs[1])
		}
	case segs[0] == "roleAssignmentScheduleRequests" && len(segs) == 3 && segs[2] == "cancel":
		if checkMethod(ex, http.MethodPost) {
			s.cancelRequest(ex, c, segs[1], false)
		}
	case segs[0] == "roleAssignmentScheduleInstances" && (len(segs) == 1 || len(segs) == 2 && isCurrentUser(segs[1])):
		if checkMethod(ex, http.MethodGet) && (len(segs) == 1 || checkCurrentUser(ex, segs[1])) {
			s.listAssignments(ex, c, len(segs) == 2)
		}
	case segs[0] == "roleEligibilityScheduleInstances" && (len(segs) == 1 || len(segs) == 2 && isCurrentUser(segs[1])):
		if checkMethod(ex, http.MethodGet) && (len(segs) == 1 || checkCurrentUser(ex, segs[1])) {
			s.listEligibilities(ex, c, len(segs) == 2)
		}
	case segs[0] == "roleDefinitions" && len(segs) <= 2:
		if checkMethod(ex, http.MethodGet) {
			s.roleDefinitions(ex, segs[1:])
		}
	default:
		ex.fail(notFoundSegment(segs[0]))
	}
}

func notFoundSegment(seg string) *graphError {
	return &graphError{http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", seg)}
}

func methodNotAllowed(m string) *graphError {
	return &graphError{http.StatusMethodNotAllowed, "Request_BadRequest", fmt.Sprintf("The HTTP method '%s' is not allowed on this resource.", m)}
}

func checkMethod(ex *exchange, want string) bool {
	if ex.r.Method != want {
		ex.fail(methodNotAllowed(ex.r.Method))
		return false
	}
	return true
}

func isCurrentUser(seg string) bool {
	return strings.HasPrefix(seg, "filterByCurrentUser(") && strings.HasSuffix(seg, ")")
}

// checkCurrentUser accepts only on='principal', the one directory roles
// support for self-service.
func checkCurrentUser(ex *exchange, seg string) bool {
	if seg != currentUser {
		ex.fail(&graphError{http.StatusBadRequest, "BadRequest", fmt.Sprintf("The parameter 'on' in %s is not supported; use on='principal'.", seg)})
		return false
	}
	return true
}

func (s *Server) createRequest(ex *exchange, c caller) {
	var b requestBody
	if !decodeBody(ex, &b) {
		return
	}
	s.mu.Lock()
	r, gerr := s.st.create(c, b, s.clock.Now())
	var out requestJSON
	if gerr == nil {
		out = r.json()
		out.Status = r.createStatus
	}
	s.mu.Unlock()
	if !s.created(ex, gerr) {
		return
	}
	out.Context = ex.metadata("roleManagement/directory/roleAssignmentScheduleRequests/$entity")
	ex.w.Header().Set("Location", ex.base()+dirPrefix+"roleAssignmentScheduleRequests/"+out.ID)
	ex.writeJSON(http.StatusCreated, out)
}

// decodeBody reads a Graph request's JSON body, at most maxRequestBytes of
// it, answering 400 itself when it does not parse.
func decodeBody(ex *exchange, v any) bool {
	if err := json.NewDecoder(io.LimitReader(ex.r.Body, maxRequestBytes)).Decode(v); err != nil {
		ex.fail(badRequest("Unable to read JSON request payload: %s", err))
		return false
	}
	return true
}

// created finishes every endpoint's create once the lock is released: a
// refusal is answered as such; otherwise the request counts as created even
// when the fault plan then drops the reply, so that tests can tell a lost
// reply from a lost request. It reports whether the caller should reply.
func (s *Server) created(ex *exchange, gerr *graphError) bool {
	if gerr != nil {
		ex.fail(gerr)
		return false
	}
	s.creates.Add(1)
	if s.dropReply.CompareAndSwap(true, false) {
		ex.drop()
		return false
	}
	return true
}

func (s *Server) getRequest(ex *exchange, id string) {
	s.mu.Lock()
	r, gerr := s.st.get(id, false, s.clock.Now())
	var out requestJSON
	if gerr == nil {
		out = r.json()
	}
	s.mu.Unlock()
	if gerr != nil {
		ex.fail(gerr)
		return
	}
	out.Context = ex.metadata("roleManagement/directory/roleAssignmentScheduleRequests/$entity")
	ex.writeJSON(http.StatusOK, out)
}

func (s *Server) cancelRequest(ex *exchange, c caller, id string, groups bool) {
	s.mu.Lock()
	gerr := s.st.cancel(c, id, groups, s.clock.Now())
	s.mu.Unlock()
	if gerr != nil {
		ex.fail(gerr)
		return
	}
	ex.w.WriteHeader(http.StatusNoContent)
}

// listRequests lists schedule requests: the caller's with mine, else all
// (what a caller with RoleManagement.Read.Directory may see).
func (s *Server) listRequests(ex *exchange, c caller, mine bool) {
	cs, ok := filterOf(ex, "status", "roleDefinitionId", "principalId", "action", "directoryScopeId")
	if !ok {
		return
	}
	s.mu.Lock()
	s.st.settle(s.clock.Now())
	all := s.st.requests
	if mine {
		all = s.st.requestsOf[c.oid]
	}
	var out []requestJSON
	for _, r := range all {
		if r.target().isDirectory() && matches(cs, r.field) {
			out = append(out, r.json())
		}
	}
	s.mu.Unlock()
	writePage(ex, ex.metadata("Collection(unifiedRoleAssignmentScheduleRequest)"), out)
}

// assignmentReadFault answers a read of assignment instances as the fault
// plan's AssignmentReadStatus says, reporting whether it did.
func assignmentReadFault(ex *exchange, f Faults) bool {
	switch status := f.AssignmentReadStatus; {
	case status == http.StatusForbidden:
		ex.fail(&graphError{status, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."})
	case status != 0:
		ex.fail(&graphError{status, "ServiceUnavailable", "The service is temporarily unavailable. Please retry."})
	default:
		return false
	}
	return true
}

func (s *Server) listAssignments(ex *exchange, c caller, mine bool) {
	out, ok := liveInstances(s, ex, []string{"roleDefinitionId", "principalId", "directoryScopeId", "assignmentType", "memberType"},
		func(st *state) []*assignment {
			if mine {
				return st.assignmentsOf[c.oid]
			}
			return st.assignments
		}, (*assignment).isDirectory, (*assignment).json)
	if !ok {
		return
	}
	writePage(ex, ex.metadata("Collection(unifiedRoleAssignmentScheduleInstance)"), out)
}

// liveInstances is what the Graph assignment-instance lists share: the
// fault plan's read fault, a $filter on names, and those of pick's
// assignments that are of the API's kind (is) and live now, rendered by
// view, that the filter keeps. It reports false when it answered itself.
func liveInstances[J interface{ field(string) string }](s *Server, ex *exchange, names []string,
	pick func(*state) []*assignment, is func(*assignment) bool, view func(*assignment) J) ([]J, bool) {
	if assignmentReadFault(ex, s.faultPlan()) {
		return nil, false
	}
	cs, ok := filterOf(ex, names...)
	if !ok {
		return nil, false
	}
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.settle(now)
	var out []J
	for _, a := range pick(s.st) {
		if !is(a) || !a.liveAt(now) {
			continue
		}
		if v := view(a); matches(cs, v.field) {
			out = append(out, v)
		}
	}
	return out, true
}

func (s *Server) listEligibilities(ex *exchange, c caller, mine bool) {
	cs, ok := filterOf(ex, "roleDefinitionId", "principalId", "directoryScopeId", "memberType")
	if !ok {
		return
	}
	// Eligibilities never change after start, so no lock is needed.
	all := s.dir.eligibility
	if mine {
		all = s.dir.eligibleOf[c.oid]
	}
	var out []eligibilityInstanceJSON
	for _, k := range all {
		id := eligibilityID(k.principal, k.role)
		v := eligibilityInstanceJSON{
			ID:                        id,
			PrincipalID:               k.principal,
			RoleDefinitionID:          k.role,
			DirectoryScopeID:          "/",
			StartDateTime:             s.st.started.UTC(),
			MemberType:                "Direct",
			RoleEligibilityScheduleID: id,
		}
		if matches(cs, v.field) {
			out = append(out, v)
		}
	}
	writePage(ex, ex.metadata("Collection(unifiedRoleEligibilityScheduleInstance)"), out)
}

// eligibilityID gives an eligibility the stable id Graph would keep for it.
func eligibilityID(principal, role string) string {
	return derivedGUID("eligibility " + principal + " " + role)
}

func (s *Server) roleDefinitions(ex *exchange, id []string) {
	if len(id) == 1 {
		role := s.dir.roleByID[strings.ToLower(id[0])]
		if role == nil {
			ex.fail(&graphError{http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id[0])})
			return
		}
		v := role.json()
		v.Context = ex.metadata("roleManagement/directory/roleDefinitions/$entity")
		ex.writeJSON(http.StatusOK, v)
		return
	}
	cs, ok := filterOf(ex, "displayName", "id", "templateId")
	if !ok {
		return
	}
	var out []roleDefinitionJSON
	for _, role := range s.dir.roles {
		v := role.json()
		if matches(cs, v.field) {
			out = append(out, v)
		}
	}
	writePage(ex, ex.metadata("roleManagement/directory/roleDefinitions"), out)
}

// filterOf parses $filter, answering 400 itself when it is invalid.
func filterOf(ex *exchange, allowed ...string) ([]clause, bool) {
	cs, err := parseFilter(ex.r.URL.Query().Get("$filter"), allowed...)
	if err != nil {
		ex.fail(&graphError{http.StatusBadRequest, "BadRequest", err.Error()})
		return nil, false
	}
	return cs, true
}

// writePage writes one page of items, starting at the $skiptoken offset,
// with an absolute @odata.nextLink when more remain.
func writePage[T any](ex *exchange, context string, items []T) {
	offset := 0
	q := ex.r.URL.Query()
	if tok := q.Get("$skiptoken"); tok != "" {
		n, err := decodeSkipToken(tok)
		if err != nil || n > len(items) {
			ex.fail(&graphError{http.StatusBadRequest, "BadRequest", "The $skiptoken is invalid."})
			return
		}
		offset = n
	}
	size := ex.s.dir.pageSize
	page := listJSON[T]{Context: context, Value: items[offset:min(offset+size, len(items))]}
	if page.Value == nil {
		page.Value = []T{}
	}
	if offset+size < len(items) {
		page.NextLink = ex.base() + strings.TrimPrefix(ex.r.URL.Path, apiVersion) + "?" + withSkipToken(ex.r.URL.RawQuery, encodeSkipToken(offset+size))
	}
	ex.writeJSON(http.StatusOK, page)
}

// withSkipToken replaces any $skiptoken in a raw query, keeping the other
// parameters as the client wrote them.
func withSkipToken(raw, token string) string {
	var kept []string
	for _, p := range strings.Split(raw, "&") {
		k, _, _ := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(k); p == "" || (err == nil && k == "$skiptoken") {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(append(kept, "$skiptoken="+token), "&")
}

// Skip tokens are opaque to clients, as Graph's are.
func encodeSkipToken(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("pimtest-skip:" + strconv.Itoa(n)))
}

func decodeSkipToken(tok string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, err
	}
	s, ok := strings.CutPrefix(string(b), "pimtest-skip:")
	if !ok {
		return 0, fmt.Errorf("not a skip token")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a skip token")
	}
	return n, nil
}

func (r *request) json() requestJSON {
	out := requestJSON{
		ID:               r.ID,
		Status:           r.Status,
		CreatedDateTime:  r.Created.UTC(),
		Action:           r.Action,
		PrincipalID:      r.Principal,
		RoleDefinitionID: r.RoleDefinitionID,
		DirectoryScopeID: r.scope,
		TargetScheduleID: r.scheduleID,
		CreatedBy:        identitySet{User: &identity{ID: r.Principal}},
		ScheduleInfo:     r.given,
		TicketInfo:       r.ticket,
	}
	out.CompletedDateTime, out.ApprovalID, out.Justification = r.nullables()
	return out
}

// nullables are a request's properties Graph sends as null until they are
// set, in the shape both the directory-role and the group request share.
func (r *request) nullables() (completed *time.Time, approvalID, justification *string) {
	if r.completed != nil {
		t := r.completed.UTC()
		completed = &t
	}
	if r.approvalID != "" {
		approvalID = &r.approvalID
	}
	if r.Justification != "" {
		justification = &r.Justification
	}
	return completed, approvalID, justification
}

func (r *request) field(name string) string {
	switch name {
	case "status":
		return r.Status
	case "roleDefinitionId":
		return r.RoleDefinitionID
	case "principalId":
		return r.Principal
	case "action":
		return r.Action
	case "directoryScopeId":
		return r.scope
	}
	return ""
}

func (a *assignment) json() assignmentInstanceJSON {
	out := assignmentInstanceJSON{
		ID:                       a.id,
		PrincipalID:              a.principal,
		RoleDefinitionID:         a.roleID,
		DirectoryScopeID:         "/",
		StartDateTime:            a.start.UTC(),
		AssignmentType:           a.kind,
		MemberType:               "Direct",
		RoleAssignmentOriginID:   a.originID,
		RoleAssignmentScheduleID: a.scheduleID,
	}
	if a.end != nil {
		t := a.end.UTC()
		out.EndDateTime = &t
	}
	return out
}

func (v assignmentInstanceJSON) field(name string) string {
	switch name {
	case "roleDefinitionId":
		return v.RoleDefinitionID
	case "principalId":
		return v.PrincipalID
	case "directoryScopeId":
		return v.DirectoryScopeID
	case "assignmentType":
		return v.AssignmentType
	case "memberType":
		return v.MemberType
	}
	return ""
}

func (v eligibilityInstanceJSON) field(name string) string {
	switch name {
	case "roleDefinitionId":
		return v.RoleDefinitionID
	case "principalId":
		return v.PrincipalID
	case "directoryScopeId":
		return v.DirectoryScopeID
	case "memberType":
		return v.MemberType
	}
	return ""
}

func (role *Role) json() roleDefinitionJSON {
	return roleDefinitionJSON{
		ID:              role.ID,
		Description:     "Emulated directory role " + role.DisplayName + ".",
		DisplayName:     role.DisplayName,
		IsBuiltIn:       true,
		IsEnabled:       true,
		ResourceScopes:  []string{"/"},
		TemplateID:      role.ID,
		RolePermissions: []rolePermission{{AllowedResourceActions: []string{}}},
	}
}

func (v roleDefinitionJSON) field(name string) string {
	switch name {
	case "displayName":
		return v.DisplayName
	case "id":
		return v.ID
	case "templateId":
		return v.TemplateID
	}
	return ""
}
