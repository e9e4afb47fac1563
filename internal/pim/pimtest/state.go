package pimtest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Request statuses the emulator produces.
const (
	StatusPendingApproval = "PendingApproval"
	StatusGranted         = "Granted"
	StatusProvisioned     = "Provisioned"
	StatusDenied          = "Denied"
	StatusCanceled        = "Canceled"
	StatusRevoked         = "Revoked"
)

// Request actions the emulator accepts.
const (
	ActionSelfActivate   = "selfActivate"
	ActionSelfDeactivate = "selfDeactivate"
	ActionAdminRemove    = "adminRemove"
)

// Errors of the approver methods.
var (
	ErrNotFound   = errors.New("pimtest: no such request")
	ErrNotPending = errors.New("pimtest: request is not pending approval")
	ErrNotActive  = errors.New("pimtest: no live assignment")
)

// Request is a schedule request as the emulator recorded it: for a
// directory role (RoleDefinitionID set) or, through PIM for Groups, for a
// group's membership or ownership (GroupID and AccessID set).
type Request struct {
	ID               string
	Action           string
	Principal        string
	RoleDefinitionID string
	GroupID          string
	AccessID         string // member or owner
	Scope            string // the Azure resource scope, for an Azure role (ARM); RoleDefinitionID is then its GUID
	Status           string
	Justification    string
	TicketNumber     string
	TicketSystem     string
	Duration         time.Duration
	Created          time.Time
}

// request is the stored form of a schedule request.
type request struct {
	Request
	scope        string
	start        time.Time    // when the assignment may begin
	given        scheduleInfo // as the client sent it (defaults filled in), echoed back
	ticket       ticketInfo   // likewise
	completed    *time.Time
	approvalID   string // "" when the role needs no approval
	scheduleID   string
	approver     Approver
	createStatus string // what the create response said, before any transition
}

// assignmentType values: activated through PIM, or assigned outright.
const (
	kindActivated = "Activated"
	kindAssigned  = "Assigned"
)

// assignment is an active role assignment, or group membership or
// ownership (an assignment schedule instance).
type assignment struct {
	id, principal, scheduleID, originID, kind string
	target
	start time.Time
	end   *time.Time // nil: permanent
}

// target is what a request or an assignment is for: a directory role,
// (PIM for Groups) a group's member or owner access, or (ARM) an Azure
// role at a scope.
type target struct{ roleID, groupID, accessID, scope string }

func (r *request) target() target { return target{r.RoleDefinitionID, r.GroupID, r.AccessID, r.Scope} }

// isARM reports whether t is an Azure role's, which ARM serves.
func (t target) isARM() bool { return t.scope != "" }

// isDirectory reports whether t is a directory role's.
func (t target) isDirectory() bool { return !t.isGroup() && !t.isARM() }

// isGroup reports whether t is PIM for Groups', which Graph serves under
// its own paths: a request or assignment is listed and found under one API only.
func (t target) isGroup() bool { return t.groupID != "" }

func (a *assignment) liveAt(t time.Time) bool {
	return !t.Before(a.start) && (a.end == nil || t.Before(*a.end))
}

// notOver reports whether the assignment is live or yet to start.
func (a *assignment) notOver(t time.Time) bool { return a.end == nil || t.Before(*a.end) }

// state is everything that changes. Server guards it with one mutex; every
// method expects the lock held. Transitions that depend on time happen in
// settle, called with the current time before every read or write, so no
// goroutine or timer is needed and a fake clock drives everything.
type state struct {
	dir         *directory
	started     time.Time
	requests    []*request
	byID        map[string]*request
	pending     []*request // PendingApproval, in creation order
	assignments []*assignment
	// Per-principal views of requests and assignments, in order, so the
	// calls every gate request makes do not scan everyone's.
	requestsOf    map[string][]*request
	assignmentsOf map[string][]*assignment
}

func newState(dir *directory, now time.Time) *state {
	st := &state{dir: dir, started: now, byID: map[string]*request{}, requestsOf: map[string][]*request{}, assignmentsOf: map[string][]*assignment{}}
	for _, a := range dir.active {
		as := &assignment{id: newID(), principal: a.Principal, target: a.target, scheduleID: newID(), originID: newID(), kind: kindAssigned, start: now}
		switch {
		case !a.End.IsZero():
			end := a.End
			as.end = &end
		case a.Duration > 0:
			end := now.Add(a.Duration)
			as.end = &end
		}
		st.addAssignment(as)
	}
	return st
}

// settle applies automatic approver decisions that are due at now.
func (st *state) settle(now time.Time) {
	kept := st.pending[:0]
	for _, r := range st.pending {
		due := r.Created.Add(r.approver.After)
		switch {
		case r.Status != StatusPendingApproval:
			continue
		case r.approver.Mode == ApproveAuto && !now.Before(due):
			st.provision(r, due)
			continue
		case r.approver.Mode == DenyAuto && !now.Before(due):
			st.finish(r, StatusDenied, due)
			continue
		}
		kept = append(kept, r)
	}
	clear(st.pending[len(kept):])
	st.pending = kept
}

func (st *state) finish(r *request, status string, at time.Time) {
	r.Status = status
	r.completed = &at
}

// provision makes r's assignment active from the later of its requested
// start and the decision time at.
func (st *state) provision(r *request, at time.Time) {
	start := r.start
	if at.After(start) {
		start = at
	}
	end := start.Add(r.Duration)
	st.addAssignment(&assignment{
		id: newID(), principal: r.Principal, target: r.target(), scheduleID: r.scheduleID,
		originID: newID(), kind: kindActivated, start: start, end: &end,
	})
	st.finish(r, StatusProvisioned, at)
}

// decide is the manual approver's action.
func (st *state) decide(id string, approve bool, now time.Time) error {
	st.settle(now)
	r := st.byID[strings.ToLower(id)]
	if r == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if r.Status != StatusPendingApproval {
		return fmt.Errorf("%w: %s is %s", ErrNotPending, id, r.Status)
	}
	if approve {
		st.provision(r, now)
	} else {
		st.finish(r, StatusDenied, now)
	}
	return nil
}

// revoke is an administrator removing principal's assignments of role.
func (st *state) revoke(principal, role string, now time.Time) error {
	st.settle(now)
	r := st.dir.role(role)
	if r == nil {
		return fmt.Errorf("%w: %s has no role %q", ErrNotActive, principal, role)
	}
	var ended *assignment
	for _, a := range st.assignmentsOf[principal] {
		if a.target == (target{roleID: r.ID}) && a.notOver(now) {
			end := now
			a.end = &end
			ended = a
		}
	}
	if ended == nil {
		return fmt.Errorf("%w: %s has no live assignment of %s", ErrNotActive, principal, r.DisplayName)
	}
	req := &request{
		Request:    Request{ID: newID(), Action: ActionAdminRemove, Principal: principal, RoleDefinitionID: r.ID, Created: now},
		scope:      "/",
		start:      now,
		scheduleID: ended.scheduleID,
	}
	req.given = scheduleInfo{StartDateTime: &req.start}
	st.finish(req, StatusRevoked, now)
	req.createStatus = StatusRevoked
	st.record(req)
	return nil
}

// cancel is the requester withdrawing a pending request, through the
// API (directory roles' or PIM for Groups') that holds it.
func (st *state) cancel(c caller, id string, groups bool, now time.Time) *graphError {
	r, gerr := st.get(id, groups, now)
	if gerr != nil {
		return gerr
	}
	if r.Principal != c.oid {
		return &graphError{http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."}
	}
	if r.Status != StatusPendingApproval {
		return &graphError{http.StatusBadRequest, "InvalidRequestStatus", fmt.Sprintf("The request cannot be canceled in its current status %s.", r.Status)}
	}
	st.finish(r, StatusCanceled, now)
	return nil
}

func errRequestNotFound(id string) *graphError {
	return &graphError{http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The role assignment schedule request %s was not found.", id)}
}

// get finds a request in the API that holds it: a group request is not
// found under roleManagement/directory, nor a role request under
// privilegedAccess/group.
func (st *state) get(id string, groups bool, now time.Time) (*request, *graphError) {
	st.settle(now)
	r := st.byID[strings.ToLower(id)]
	if r == nil || r.target().isGroup() != groups || r.target().isARM() {
		return nil, errRequestNotFound(id)
	}
	return r, nil
}

// activeFor is the principal's assignment of t that has not ended.
func (st *state) activeFor(principal string, t target, now time.Time) *assignment {
	for _, a := range st.assignmentsOf[principal] {
		if a.target == t && a.notOver(now) {
			return a
		}
	}
	return nil
}

// Policy rules Graph names in RoleAssignmentRequestPolicyValidationFailed.
const (
	ruleEligibility   = "EligibilityRule"
	ruleExpiration    = "ExpirationRule"
	ruleJustification = "JustificationRule"
	ruleTicketing     = "TicketingRule"
	ruleMFA           = "MfaRule"
)

// create validates a directory role schedule request body as Graph does
// and records it.
func (st *state) create(c caller, b requestBody, now time.Time) (*request, *graphError) {
	st.settle(now)
	if gerr := checkAction(b.Action); gerr != nil {
		return nil, gerr
	}
	if b.PrincipalID == "" || b.RoleDefinitionID == "" {
		return nil, badRequest("principalId and roleDefinitionId are required.")
	}
	if b.DirectoryScopeID == "" && (b.AppScopeID == nil || *b.AppScopeID == "") {
		return nil, badRequest("Either directoryScopeId or appScopeId must be set.")
	}
	principal, gerr := st.self(c, b.PrincipalID)
	if gerr != nil {
		return nil, gerr
	}
	role := st.dir.roleByID[strings.ToLower(b.RoleDefinitionID)]
	if role == nil {
		return nil, &graphError{http.StatusNotFound, "RoleNotFound", "The role is not found."}
	}
	r := &request{
		Request: Request{ID: newID(), Action: b.Action, Principal: principal, RoleDefinitionID: role.ID, Justification: b.Justification, Created: now},
		scope:   b.DirectoryScopeID,
	}
	return st.submit(c, r, role, b.ScheduleInfo, b.TicketInfo, st.dir.eligible[roleKey{principal, role.ID}], now)
}

func badRequest(format string, args ...any) *graphError {
	return &graphError{http.StatusBadRequest, "BadRequest", fmt.Sprintf(format, args...)}
}

func checkAction(action string) *graphError {
	if action != ActionSelfActivate && action != ActionSelfDeactivate {
		return badRequest("The action %q is not supported; this endpoint serves selfActivate and selfDeactivate.", action)
	}
	return nil
}

// self checks that a self action's principalId is the caller, a user of
// the directory, and returns it lower-cased.
func (st *state) self(c caller, principalID string) (string, *graphError) {
	principal := strings.ToLower(principalID)
	if principal != c.oid {
		return "", &graphError{http.StatusForbidden, "Authorization_RequestDenied",
			"Insufficient privileges to complete the operation. A self action can only be requested for the signed-in user."}
	}
	if _, ok := st.dir.users[principal]; !ok {
		return "", &graphError{http.StatusBadRequest, "SubjectNotFound", "The subject is not found."}
	}
	return principal, nil
}

// submit applies a self action r (its target, principal and action set)
// under pol, the PIM settings of r's role or group, and records it:
// selfDeactivate ends the live activation; selfActivate is checked against
// pending requests, live assignments, eligible and pol's rules.
func (st *state) submit(c caller, r *request, pol *Role, si *scheduleInfo, ti *ticketInfo, eligible bool, now time.Time) (*request, *graphError) {
	r.scheduleID = newID()
	r.approver = *pol.Approver
	if ti != nil {
		r.ticket = *ti
		r.TicketNumber = deref(ti.TicketNumber)
		r.TicketSystem = deref(ti.TicketSystem)
	}
	t := r.target()
	if r.Action == ActionSelfDeactivate {
		a := st.activeFor(r.Principal, t, now)
		if a == nil || a.kind != kindActivated {
			return nil, &graphError{http.StatusBadRequest, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."}
		}
		end := now
		a.end = &end
		r.start = now
		r.given = scheduleInfo{StartDateTime: &r.start}
		r.scheduleID = a.scheduleID
		st.finish(r, StatusRevoked, now)
		r.createStatus = StatusRevoked
		st.record(r)
		return r, nil
	}
	for _, p := range st.pending {
		if p.Principal == r.Principal && p.target() == t && p.Status == StatusPendingApproval {
			return nil, &graphError{http.StatusBadRequest, "PendingRoleAssignmentRequest", "There is already an existing pending Role assignment request."}
		}
	}
	if st.activeFor(r.Principal, t, now) != nil {
		return nil, &graphError{http.StatusBadRequest, "RoleAssignmentExists", "The Role assignment already exists."}
	}
	if gerr := checkAuthContext(pol, c); gerr != nil {
		return nil, gerr
	}
	var failed []string
	if !eligible {
		failed = append(failed, ruleEligibility)
	}
	start, duration, ok, gerr := schedule(si, pol.MaxDuration, now)
	if gerr != nil {
		return nil, gerr
	}
	if !ok {
		failed = append(failed, ruleExpiration)
	}
	if pol.RequiresJustification && strings.TrimSpace(r.Justification) == "" {
		failed = append(failed, ruleJustification)
	}
	if pol.RequiresTicket && strings.TrimSpace(r.TicketNumber) == "" {
		failed = append(failed, ruleTicketing)
	}
	if pol.RequiresMFA && !c.mfa {
		failed = append(failed, ruleMFA)
	}
	if len(failed) > 0 {
		return nil, &graphError{http.StatusBadRequest, "RoleAssignmentRequestPolicyValidationFailed",
			fmt.Sprintf("The following policy rules failed: [\"%s\"]", strings.Join(failed, `","`))}
	}
	r.start, r.Duration = start, duration
	if si != nil {
		r.given = *si
	}
	if r.given.StartDateTime == nil {
		r.given.StartDateTime = &r.start
	}
	if r.given.Expiration == nil {
		d := formatISODuration(duration)
		r.given.Expiration = &expiration{Type: "afterDuration", Duration: &d}
	}
	if pol.RequiresApproval {
		r.approvalID = newID()
		r.Status = StatusPendingApproval
		r.createStatus = StatusPendingApproval
		st.pending = append(st.pending, r)
	} else {
		// Graph answers Granted, then moves to Provisioned as soon as the
		// assignment exists, which here is at once.
		r.createStatus = StatusGranted
		st.provision(r, now)
	}
	st.record(r)
	return r, nil
}

func (st *state) record(r *request) {
	st.requests = append(st.requests, r)
	st.requestsOf[r.Principal] = append(st.requestsOf[r.Principal], r)
	st.byID[r.ID] = r
}

func (st *state) addAssignment(a *assignment) {
	st.assignments = append(st.assignments, a)
	st.assignmentsOf[a.principal] = append(st.assignmentsOf[a.principal], a)
}

// schedule reads the requested window. ok is false when the window breaks
// the role's expiration rule (too long, or no expiration at all); a
// malformed window is a 400 of its own.
func schedule(si *scheduleInfo, limit time.Duration, now time.Time) (start time.Time, d time.Duration, ok bool, gerr *graphError) {
	start = now
	if si == nil || si.Expiration == nil {
		// Graph applies the role's maximum when no expiration is given.
		return start, limit, true, nil
	}
	if si.StartDateTime != nil {
		start = *si.StartDateTime
	}
	bad := func(msg string) (time.Time, time.Duration, bool, *graphError) {
		return time.Time{}, 0, false, &graphError{http.StatusBadRequest, "InvalidScheduleInfo", msg}
	}
	switch e := si.Expiration; e.Type {
	case "afterDuration":
		if e.Duration == nil {
			return bad("expiration.duration is required when expiration.type is afterDuration.")
		}
		v, err := parseISODuration(*e.Duration)
		if err != nil {
			return bad("expiration.duration: " + err.Error())
		}
		d = v
	case "afterDateTime":
		if e.EndDateTime == nil {
			return bad("expiration.endDateTime is required when expiration.type is afterDateTime.")
		}
		d = e.EndDateTime.Sub(start)
	case "noExpiration":
		return start, 0, false, nil
	default:
		return bad(fmt.Sprintf("expiration.type %q is not afterDuration, afterDateTime or noExpiration.", e.Type))
	}
	if d <= 0 {
		return bad("The requested schedule ends before it starts.")
	}
	return start, d, d <= limit, nil
}

// snapshot copies the public view of every request, in creation order.
func (st *state) snapshot(now time.Time) []Request {
	st.settle(now)
	out := make([]Request, len(st.requests))
	for i, r := range st.requests {
		out[i] = r.Request
	}
	return out
}

// graphError is a Graph error response.
type graphError struct {
	status        int
	code, message string
}

func (e *graphError) Error() string { return e.code + ": " + e.message }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
