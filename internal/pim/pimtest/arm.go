package pimtest

// The emulator is also Azure Resource Manager for Azure resource roles, at
// its root (ARMURL), as https://management.azure.com serves PIM's
// Microsoft.Authorization API:
//
//	GET  {scope}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq '…'&api-version=2022-04-01
//	GET  {scope}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?$filter=asTarget()&api-version=2020-10-01
//	GET  {scope}/providers/Microsoft.Authorization/roleAssignmentScheduleInstances?$filter=asTarget()&api-version=2020-10-01
//	PUT  {scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version=2020-10-01
//	GET  {scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version=2020-10-01
//	POST {scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}/cancel?api-version=2020-10-01
//
// Bodies have ARM's {id, name, type, properties} shape, errors ARM's
// {"error":{"code","message"}}, pages ARM's nextLink. Only tokens issued
// for ARM are accepted (a Graph token is refused with 401
// InvalidAuthenticationTokenAudience, as ARM does), and Graph refuses ARM
// tokens. An eligibility at a scope covers every scope under it; a request
// shares the directory roles' lifecycle (approver, statuses, rules,
// faults), and a PUT again under a request's name answers that request.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	graphAudience = "https://graph.microsoft.com"
	armAudience   = "https://management.azure.com"
	armPIMVersion = "2020-10-01"
	authzProvider = "/providers/Microsoft.Authorization/"
)

// armAudiences are the audiences ARM accepts.
var armAudiences = []string{"https://management.azure.com", "https://management.azure.com/", "https://management.core.windows.net", "https://management.core.windows.net/"}

// roleDefinitionVersions are the roleDefinitions api-versions served.
var roleDefinitionVersions = []string{"2022-04-01", "2018-01-01-preview", "2015-07-01"}

// WithARMAudience mints a token for Azure Resource Manager instead of
// Graph: what a credential gives when asked for
// https://management.azure.com/.default.
func WithARMAudience() TokenOption {
	return func(c *tokenClaims) { c.Aud, c.Scp = armAudience, "user_impersonation" }
}

// ARMURL is the Azure Resource Manager base URL, e.g.
// https://127.0.0.1:43123 (https://management.azure.com in Azure). Empty
// before Start.
func (s *Server) ARMURL() string { return strings.TrimSuffix(s.url, apiVersion) }

// AzureRole is an Azure RBAC role definition: DisplayName is its roleName
// (Contributor), ID its role definition GUID (derived from the name when
// empty), and the rest its PIM activation settings.
type AzureRole Role

// AzureEligibility makes Principal eligible for the Azure role Role (name
// or GUID) at Scope (/subscriptions/{id}[/resourceGroups/{name}[/providers/…]])
// and every scope under it.
type AzureEligibility struct {
	Principal string `yaml:"principal"`
	Role      string `yaml:"role"`
	Scope     string `yaml:"scope"`
}

// azureDirectory is the scenario's Azure roles and eligibilities.
type azureDirectory struct {
	roles        []*Role
	byID, byName map[string]*Role
	eligibleOf   map[string][]azureEligible // by principal, in scenario order
}

// azureEligible is one eligibility; id is its schedule's GUID.
type azureEligible struct{ principal, roleID, scope, id string }

func (e azureEligible) scheduleID() string {
	return e.scope + authzProvider + "RoleEligibilitySchedules/" + e.id
}

func (sc Scenario) normalizeAzure(d *directory, bad func(string, ...any)) azureDirectory {
	roles := make([]Role, len(sc.AzureRoles))
	for i, r := range sc.AzureRoles {
		roles[i] = Role(r)
	}
	a := azureDirectory{eligibleOf: map[string][]azureEligible{}}
	a.roles, a.byID, a.byName = normalizeRoles("azureRoles", roles, sc.Approver, "pimtest azure role ", bad)
	for i, e := range sc.AzureEligibilities {
		p := strings.ToLower(e.Principal)
		if _, ok := d.users[p]; !ok {
			bad("azureEligibilities[%d]: principal %q is not a user", i, e.Principal)
			continue
		}
		r := a.role(e.Role)
		if r == nil {
			bad("azureEligibilities[%d]: role %q is not one of azureRoles", i, e.Role)
			continue
		}
		if !wellFormedScope(e.Scope) {
			bad("azureEligibilities[%d]: scope %q is not /subscriptions/{GUID}[/resourceGroups/{name}[/providers/…]]", i, e.Scope)
			continue
		}
		el := azureEligible{p, r.ID, e.Scope, derivedGUIDOf("pimtest azure eligibility " + p + " " + r.ID + " " + strings.ToLower(e.Scope))}
		a.eligibleOf[p] = append(a.eligibleOf[p], el)
	}
	return a
}

func (a *azureDirectory) role(idOrName string) *Role {
	if r := a.byID[strings.ToLower(idOrName)]; r != nil {
		return r
	}
	return a.byName[strings.ToLower(idOrName)]
}

// wellFormedScope accepts /subscriptions/{GUID} and the scopes under it,
// without empty, . or .. segments.
func wellFormedScope(s string) bool {
	segs := strings.Split(strings.TrimPrefix(s, "/"), "/")
	return strings.HasPrefix(s, "/") && len(segs) >= 2 && strings.EqualFold(segs[0], "subscriptions") && isGUID(segs[1]) &&
		!slices.ContainsFunc(segs, func(p string) bool { return p == "" || p == "." || p == ".." })
}

// covers reports whether scope is target or above it, segment by segment
// and without regard to case.
func covers(scope, target string) bool {
	s, t := strings.Split(strings.Trim(scope, "/"), "/"), strings.Split(strings.Trim(target, "/"), "/")
	if len(s) > len(t) {
		return false
	}
	for i := range s {
		if !strings.EqualFold(s[i], t[i]) {
			return false
		}
	}
	return true
}

// related reports whether an instance at scope is listed for a request at
// target: ARM lists those at, above and below the scope asked about.
func related(scope, target string) bool { return covers(scope, target) || covers(target, scope) }

func subscriptionOf(scope string) string {
	segs := strings.SplitN(strings.TrimPrefix(scope, "/"), "/", 3)
	return "/" + segs[0] + "/" + segs[1]
}

func isARMPath(p string) bool { return strings.HasPrefix(strings.ToLower(p), "/subscriptions/") }

// splitARM cuts an ARM path into the scope and what follows
// /providers/Microsoft.Authorization/.
func splitARM(p string) (scope, rest string, ok bool) {
	i := strings.LastIndex(strings.ToLower(p), strings.ToLower(authzProvider))
	if i < 0 {
		return "", "", false
	}
	scope, rest = p[:i], strings.TrimSuffix(p[i+len(authzProvider):], "/")
	return scope, rest, wellFormedScope(scope) && rest != ""
}

// ARM wire shapes, after the 2020-10-01 examples in azure-rest-api-specs.
type (
	armErrorJSON struct {
		Error armErrorDetail `json:"error"`
	}
	armErrorDetail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	armListJSON[T any] struct {
		Value    []T    `json:"value"`
		NextLink string `json:"nextLink,omitempty"`
	}
	armResource[P any] struct {
		Properties P      `json:"properties"`
		Name       string `json:"name"`
		ID         string `json:"id"`
		Type       string `json:"type"`
	}
	armExpanded struct {
		Scope          armRef `json:"scope"`
		RoleDefinition armRef `json:"roleDefinition"`
		Principal      armRef `json:"principal"`
	}
	armRef struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
		Type        string `json:"type"`
	}
	armRequestBody struct {
		Properties *struct {
			PrincipalID                     string        `json:"principalId"`
			RoleDefinitionID                string        `json:"roleDefinitionId"`
			RequestType                     string        `json:"requestType"`
			LinkedRoleEligibilityScheduleID string        `json:"linkedRoleEligibilityScheduleId"`
			ScheduleInfo                    *scheduleInfo `json:"scheduleInfo"`
			Justification                   string        `json:"justification"`
			TicketInfo                      *ticketInfo   `json:"ticketInfo"`
		} `json:"properties"`
	}
	armRequestProps struct {
		TargetRoleAssignmentScheduleID         string       `json:"targetRoleAssignmentScheduleId"`
		TargetRoleAssignmentScheduleInstanceID *string      `json:"targetRoleAssignmentScheduleInstanceId"`
		Scope                                  string       `json:"scope"`
		RoleDefinitionID                       string       `json:"roleDefinitionId"`
		PrincipalID                            string       `json:"principalId"`
		PrincipalType                          string       `json:"principalType"`
		RequestType                            string       `json:"requestType"`
		Status                                 string       `json:"status"`
		ApprovalID                             *string      `json:"approvalId"`
		ScheduleInfo                           scheduleInfo `json:"scheduleInfo"`
		TicketInfo                             ticketInfo   `json:"ticketInfo"`
		Justification                          *string      `json:"justification"`
		RequestorID                            string       `json:"requestorId"`
		CreatedOn                              time.Time    `json:"createdOn"`
		Condition                              *string      `json:"condition"`
		ConditionVersion                       *string      `json:"conditionVersion"`
		ExpandedProperties                     armExpanded  `json:"expandedProperties"`
	}
	armEligibilityProps struct {
		Scope                     string      `json:"scope"`
		RoleDefinitionID          string      `json:"roleDefinitionId"`
		PrincipalID               string      `json:"principalId"`
		PrincipalType             string      `json:"principalType"`
		Status                    string      `json:"status"`
		RoleEligibilityScheduleID string      `json:"roleEligibilityScheduleId"`
		StartDateTime             time.Time   `json:"startDateTime"`
		EndDateTime               *time.Time  `json:"endDateTime"`
		MemberType                string      `json:"memberType"`
		CreatedOn                 time.Time   `json:"createdOn"`
		Condition                 *string     `json:"condition"`
		ConditionVersion          *string     `json:"conditionVersion"`
		ExpandedProperties        armExpanded `json:"expandedProperties"`
	}
	armAssignmentProps struct {
		OriginRoleAssignmentID          string      `json:"originRoleAssignmentId"`
		LinkedRoleEligibilityScheduleID *string     `json:"linkedRoleEligibilityScheduleId"`
		AssignmentType                  string      `json:"assignmentType"`
		Scope                           string      `json:"scope"`
		RoleDefinitionID                string      `json:"roleDefinitionId"`
		PrincipalID                     string      `json:"principalId"`
		PrincipalType                   string      `json:"principalType"`
		Status                          string      `json:"status"`
		RoleAssignmentScheduleID        string      `json:"roleAssignmentScheduleId"`
		StartDateTime                   time.Time   `json:"startDateTime"`
		EndDateTime                     *time.Time  `json:"endDateTime"`
		MemberType                      string      `json:"memberType"`
		CreatedOn                       time.Time   `json:"createdOn"`
		ExpandedProperties              armExpanded `json:"expandedProperties"`
	}
	armRoleDefinitionProps struct {
		RoleName         string   `json:"roleName"`
		Type             string   `json:"type"`
		Description      string   `json:"description"`
		AssignableScopes []string `json:"assignableScopes"`
		Permissions      []any    `json:"permissions"`
	}
)

func armError(status int, code, format string, args ...any) *graphError {
	return &graphError{status, code, fmt.Sprintf(format, args...)}
}

// serveARM authenticates an ARM call and routes it.
func (s *Server) serveARM(ex *exchange) {
	c, err := verifyToken(s.tokenKey, ex.r.Header.Get("Authorization"), s.clock.Now())
	challenge := `Bearer authorization_uri="https://login.windows.net/` + s.dir.tenantID + `", error="invalid_token", error_description="The access token is invalid."`
	switch {
	case err == errNoToken:
		ex.w.Header().Set("WWW-Authenticate", challenge)
		ex.fail(armError(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."))
		return
	case err != nil:
		ex.w.Header().Set("WWW-Authenticate", challenge)
		ex.fail(armError(http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid: %s", err))
		return
	case !slices.Contains(armAudiences, c.aud):
		ex.w.Header().Set("WWW-Authenticate", challenge)
		ex.fail(armError(http.StatusUnauthorized, "InvalidAuthenticationTokenAudience",
			"The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s'.", c.aud, strings.Join(armAudiences, "','")))
		return
	}
	scope, rest, ok := splitARM(ex.r.URL.Path)
	if !ok {
		ex.fail(armError(http.StatusNotFound, "InvalidResourceType", "The resource type could not be found in the namespace 'Microsoft.Authorization' for api version '%s'.", ex.r.URL.Query().Get("api-version")))
		return
	}
	segs := strings.Split(rest, "/")
	version := ex.r.URL.Query().Get("api-version")
	want := []string{armPIMVersion}
	if strings.EqualFold(segs[0], "roleDefinitions") {
		want = roleDefinitionVersions
	}
	switch {
	case version == "":
		ex.fail(armError(http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests."))
		return
	case !slices.Contains(want, version):
		ex.fail(armError(http.StatusBadRequest, "InvalidApiVersionParameter", "The api-version '%s' is invalid. The supported versions are '%s'.", version, strings.Join(want, ",")))
		return
	}
	method := ex.r.Method
	is := func(name string, n int, m string) bool {
		return strings.EqualFold(segs[0], name) && len(segs) == n && method == m
	}
	switch {
	case is("roleDefinitions", 1, http.MethodGet):
		s.armRoleDefinitions(ex, scope)
	case is("roleEligibilityScheduleInstances", 1, http.MethodGet):
		s.armEligibilities(ex, c, scope)
	case is("roleAssignmentScheduleInstances", 1, http.MethodGet):
		s.armAssignments(ex, c, scope)
	case is("roleAssignmentScheduleRequests", 2, http.MethodPut):
		s.armCreate(ex, c, scope, segs[1])
	case is("roleAssignmentScheduleRequests", 2, http.MethodGet):
		s.armGetRequest(ex, c, scope, segs[1])
	case is("roleAssignmentScheduleRequests", 3, http.MethodPost) && strings.EqualFold(segs[2], "cancel"):
		s.armCancel(ex, c, scope, segs[1])
	case slices.ContainsFunc([]string{"roleDefinitions", "roleEligibilityScheduleInstances", "roleAssignmentScheduleInstances", "roleAssignmentScheduleRequests"},
		func(n string) bool { return strings.EqualFold(n, segs[0]) }):
		ex.fail(armError(http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '%s'.", method))
	default:
		ex.fail(armError(http.StatusNotFound, "InvalidResourceType", "The resource type '%s' could not be found in the namespace 'Microsoft.Authorization' for api version '%s'.", segs[0], version))
	}
}

// asTarget accepts the one $filter the emulator serves for the schedule
// instances: the caller's own.
func asTarget(ex *exchange) bool {
	if f := strings.TrimSpace(ex.r.URL.Query().Get("$filter")); !strings.EqualFold(f, "asTarget()") {
		ex.fail(armError(http.StatusBadRequest, "BadRequest", "The filter '%s' is not supported: this emulator lists the caller's own instances, $filter=asTarget().", f))
		return false
	}
	return true
}

func (s *Server) armRoleDefinitions(ex *exchange, scope string) {
	cs, err := parseFilter(ex.r.URL.Query().Get("$filter"), "roleName", "type")
	if err != nil {
		ex.fail(armError(http.StatusBadRequest, "BadRequest", "%s", err))
		return
	}
	out := []armResource[armRoleDefinitionProps]{}
	for _, r := range s.dir.azure.roles {
		v := armResource[armRoleDefinitionProps]{
			Properties: armRoleDefinitionProps{RoleName: r.DisplayName, Type: "BuiltInRole", Description: "Emulated Azure role " + r.DisplayName + ".",
				AssignableScopes: []string{"/"}, Permissions: []any{map[string]any{"actions": []string{"*"}, "notActions": []string{}, "dataActions": []string{}, "notDataActions": []string{}}}},
			Name: r.ID, ID: subscriptionOf(scope) + authzProvider + "roleDefinitions/" + r.ID, Type: "Microsoft.Authorization/roleDefinitions",
		}
		// ARM compares role names without regard to case.
		if !slices.ContainsFunc(cs, func(c clause) bool {
			return !strings.EqualFold(c.value, map[string]string{"roleName": v.Properties.RoleName, "type": v.Properties.Type}[c.field])
		}) {
			out = append(out, v)
		}
	}
	writeARMPage(ex, out)
}

func (s *Server) armEligibilities(ex *exchange, c caller, scope string) {
	if !asTarget(ex) {
		return
	}
	out := []armResource[armEligibilityProps]{}
	for _, e := range s.dir.azure.eligibleOf[c.oid] {
		if !related(e.scope, scope) {
			continue
		}
		role := s.dir.azure.byID[e.roleID]
		start := s.st.started.UTC()
		name := derivedGUIDOf("pimtest azure eligibility instance " + e.id)
		out = append(out, armResource[armEligibilityProps]{
			Properties: armEligibilityProps{
				Scope: e.scope, RoleDefinitionID: subscriptionOf(e.scope) + authzProvider + "roleDefinitions/" + e.roleID, PrincipalID: e.principal,
				PrincipalType: "User", Status: StatusProvisioned, RoleEligibilityScheduleID: e.scheduleID(), StartDateTime: start,
				MemberType: "Direct", CreatedOn: start, ExpandedProperties: s.expanded(e.scope, role, e.principal),
			},
			Name: name, ID: e.scope + authzProvider + "RoleEligibilityScheduleInstances/" + name, Type: "Microsoft.Authorization/RoleEligibilityScheduleInstances",
		})
	}
	writeARMPage(ex, out)
}

func (s *Server) armAssignments(ex *exchange, c caller, scope string) {
	if status := s.faultPlan().AssignmentReadStatus; status == http.StatusForbidden {
		ex.fail(armError(status, "AuthorizationFailed", "The client '%s' with object id '%s' does not have authorization to perform action 'Microsoft.Authorization/roleAssignmentScheduleInstances/read' over scope '%s' or the scope is invalid.", c.oid, c.oid, scope))
		return
	} else if status != 0 {
		ex.fail(armError(status, "ServiceUnavailable", "The service is temporarily unavailable. Please retry."))
		return
	}
	if !asTarget(ex) {
		return
	}
	now := s.clock.Now()
	out := []armResource[armAssignmentProps]{}
	s.mu.Lock()
	s.st.settle(now)
	for _, a := range s.st.assignmentsOf[c.oid] {
		if !a.isARM() || !a.liveAt(now) || !related(a.scope, scope) {
			continue
		}
		v := armResource[armAssignmentProps]{
			Properties: armAssignmentProps{
				OriginRoleAssignmentID: a.scope + authzProvider + "roleAssignments/" + a.originID, AssignmentType: a.kind, Scope: a.scope,
				RoleDefinitionID: subscriptionOf(a.scope) + authzProvider + "roleDefinitions/" + a.roleID, PrincipalID: a.principal, PrincipalType: "User",
				Status: StatusProvisioned, RoleAssignmentScheduleID: a.scope + authzProvider + "RoleAssignmentSchedules/" + a.scheduleID,
				StartDateTime: a.start.UTC(), MemberType: "Direct", CreatedOn: a.start.UTC(),
				ExpandedProperties: s.expanded(a.scope, s.dir.azure.byID[a.roleID], a.principal),
			},
			Name: a.id, ID: a.scope + authzProvider + "RoleAssignmentScheduleInstances/" + a.id, Type: "Microsoft.Authorization/RoleAssignmentScheduleInstances",
		}
		if a.end != nil {
			t := a.end.UTC()
			v.Properties.EndDateTime = &t
		}
		out = append(out, v)
	}
	s.mu.Unlock()
	writeARMPage(ex, out)
}

// expanded is the expandedProperties ARM adds to instances and requests.
func (s *Server) expanded(scope string, role *Role, principal string) armExpanded {
	kind := "resource"
	switch n := len(strings.Split(strings.Trim(scope, "/"), "/")); {
	case n == 2:
		kind = "subscription"
	case n == 4:
		kind = "resourcegroup"
	}
	e := armExpanded{
		Scope:     armRef{ID: scope, DisplayName: scope[strings.LastIndex(scope, "/")+1:], Type: kind},
		Principal: armRef{ID: principal, DisplayName: s.dir.users[principal].Name, Type: "User"},
	}
	if role != nil {
		e.RoleDefinition = armRef{ID: subscriptionOf(scope) + authzProvider + "roleDefinitions/" + role.ID, DisplayName: role.DisplayName, Type: "BuiltInRole"}
	}
	return e
}

// armExpirations maps ARM's expiration types to Graph's, whose schedule
// rules the emulator applies to both.
var armExpirations = map[string]string{"AfterDuration": "afterDuration", "AfterDateTime": "afterDateTime", "NoExpiration": "noExpiration"}

func (s *Server) armCreate(ex *exchange, c caller, scope, name string) {
	if !isGUID(name) {
		ex.fail(armError(http.StatusBadRequest, "InvalidRoleAssignmentScheduleRequestName", "The role assignment schedule request name '%s' is not valid: it must be a GUID.", name))
		return
	}
	var b armRequestBody
	if err := json.NewDecoder(io.LimitReader(ex.r.Body, maxRequestBytes)).Decode(&b); err != nil || b.Properties == nil {
		ex.fail(armError(http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: want {\"properties\": {...}}."))
		return
	}
	p := b.Properties
	action := map[string]string{"selfactivate": ActionSelfActivate, "selfdeactivate": ActionSelfDeactivate}[strings.ToLower(p.RequestType)]
	if action == "" {
		ex.fail(armError(http.StatusBadRequest, "InvalidRequestType", "The requestType '%s' is not supported; this emulator serves SelfActivate and SelfDeactivate.", p.RequestType))
		return
	}
	principal := strings.ToLower(p.PrincipalID)
	if principal != c.oid {
		ex.fail(armError(http.StatusForbidden, "AuthorizationFailed", "The client '%s' with object id '%s' does not have authorization to perform action 'Microsoft.Authorization/roleAssignmentScheduleRequests/write' over scope '%s' or the scope is invalid.", c.oid, c.oid, scope))
		return
	}
	if _, ok := s.dir.users[principal]; !ok {
		ex.fail(armError(http.StatusBadRequest, "PrincipalNotFound", "Principal %s does not exist in the directory %s.", principal, s.dir.tenantID))
		return
	}
	i := strings.LastIndex(strings.ToLower(p.RoleDefinitionID), "/providers/microsoft.authorization/roledefinitions/")
	if i < 0 {
		ex.fail(armError(http.StatusBadRequest, "InvalidRoleDefinitionId", "The role definition ID '%s' is not valid: want /subscriptions/{id}/providers/Microsoft.Authorization/roleDefinitions/{GUID}.", p.RoleDefinitionID))
		return
	}
	role := s.dir.azure.byID[strings.ToLower(p.RoleDefinitionID[i+len("/providers/microsoft.authorization/roledefinitions/"):])]
	if role == nil {
		ex.fail(armError(http.StatusBadRequest, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", p.RoleDefinitionID))
		return
	}
	si := p.ScheduleInfo
	var armType string
	if si != nil && si.Expiration != nil {
		armType = si.Expiration.Type
		if t, ok := armExpirations[armType]; ok {
			si.Expiration.Type = t
		}
	}
	now := s.clock.Now()
	s.mu.Lock()
	s.st.settle(now)
	if old := s.st.byID[strings.ToLower(name)]; old != nil {
		// A PUT again under a request's name answers that request.
		same := old.target().isARM() && old.Principal == principal && old.RoleDefinitionID == role.ID && strings.EqualFold(old.Scope, scope)
		out := old.armJSON()
		s.mu.Unlock()
		if !same {
			ex.fail(armError(http.StatusConflict, "RoleAssignmentScheduleRequestExists", "A role assignment schedule request named '%s' exists with other properties.", name))
			return
		}
		ex.writeJSON(http.StatusOK, out)
		return
	}
	eligible := false
	for _, e := range s.dir.azure.eligibleOf[principal] {
		linked := p.LinkedRoleEligibilityScheduleID
		if e.roleID == role.ID && covers(e.scope, scope) && (linked == "" || strings.EqualFold(linked, e.scheduleID()) || strings.EqualFold(linked, e.id)) {
			eligible = true
		}
	}
	r := &request{
		Request: Request{ID: strings.ToLower(name), Action: action, Principal: principal, RoleDefinitionID: role.ID, Scope: scope, Justification: p.Justification, Created: now},
		scope:   scope,
	}
	r, gerr := s.st.submit(c, r, role, si, p.TicketInfo, eligible, now)
	var out armResource[armRequestProps]
	if gerr == nil {
		if r.given.Expiration != nil && armType != "" {
			r.given.Expiration.Type = armType // echoed as sent
		}
		out = r.armJSON()
	}
	s.mu.Unlock()
	if !s.created(ex, gerr) {
		return
	}
	ex.writeJSON(http.StatusCreated, out)
}

// armRequest finds the caller's ARM request name at scope, answering 404
// itself when there is none.
func (s *Server) armRequest(ex *exchange, c caller, scope, name string) *request {
	r := s.st.byID[strings.ToLower(name)]
	if r == nil || !r.target().isARM() || !strings.EqualFold(r.Scope, scope) || r.Principal != c.oid {
		ex.fail(armError(http.StatusNotFound, "RoleAssignmentScheduleRequestNotFound", "The role assignment schedule request '%s' was not found at scope '%s'.", name, scope))
		return nil
	}
	return r
}

func (s *Server) armGetRequest(ex *exchange, c caller, scope, name string) {
	s.mu.Lock()
	s.st.settle(s.clock.Now())
	r := s.armRequest(ex, c, scope, name)
	var out armResource[armRequestProps]
	if r != nil {
		out = r.armJSON()
	}
	s.mu.Unlock()
	if r != nil {
		ex.writeJSON(http.StatusOK, out)
	}
}

func (s *Server) armCancel(ex *exchange, c caller, scope, name string) {
	now := s.clock.Now()
	s.mu.Lock()
	s.st.settle(now)
	r := s.armRequest(ex, c, scope, name)
	var gerr *graphError
	if r != nil && r.Status != StatusPendingApproval {
		gerr = armError(http.StatusBadRequest, "InvalidRequestStatus", "The request cannot be canceled in its current status %s.", r.Status)
	} else if r != nil {
		s.st.finish(r, StatusCanceled, now)
	}
	s.mu.Unlock()
	switch {
	case gerr != nil:
		ex.fail(gerr)
	case r != nil:
		ex.w.Header().Set("Content-Length", "0")
		ex.w.WriteHeader(http.StatusOK)
	}
}

// armJSON is an ARM roleAssignmentScheduleRequest.
func (r *request) armJSON() armResource[armRequestProps] {
	p := armRequestProps{
		TargetRoleAssignmentScheduleID: r.scheduleID, Scope: r.Scope,
		RoleDefinitionID: subscriptionOf(r.Scope) + authzProvider + "roleDefinitions/" + r.RoleDefinitionID,
		PrincipalID:      r.Principal, PrincipalType: "User", RequestType: map[string]string{ActionSelfActivate: "SelfActivate", ActionSelfDeactivate: "SelfDeactivate"}[r.Action],
		Status: r.Status, ScheduleInfo: r.given, TicketInfo: r.ticket, RequestorID: r.Principal, CreatedOn: r.Created.UTC(),
		ExpandedProperties: armExpanded{Scope: armRef{ID: r.Scope}, RoleDefinition: armRef{ID: subscriptionOf(r.Scope) + authzProvider + "roleDefinitions/" + r.RoleDefinitionID},
			Principal: armRef{ID: r.Principal, Type: "User"}},
	}
	if r.approvalID != "" {
		id := r.Scope + authzProvider + "RoleAssignmentApprovals/" + r.approvalID
		p.ApprovalID = &id
	}
	if r.Justification != "" {
		p.Justification = &r.Justification
	}
	return armResource[armRequestProps]{Properties: p, Name: r.ID, ID: r.Scope + authzProvider + "RoleAssignmentScheduleRequests/" + r.ID,
		Type: "Microsoft.Authorization/RoleAssignmentScheduleRequests"}
}

// writeARMPage writes one page of items from the $skipToken offset on,
// with an absolute nextLink when more remain.
func writeARMPage[T any](ex *exchange, items []T) {
	q := ex.r.URL.Query()
	offset := 0
	if tok := q.Get("$skipToken"); tok != "" {
		n, err := decodeSkipToken(tok)
		if err != nil || n > len(items) {
			ex.fail(armError(http.StatusBadRequest, "InvalidSkipToken", "The $skipToken is invalid."))
			return
		}
		offset = n
	}
	size := ex.s.dir.pageSize
	page := armListJSON[T]{Value: items[offset:min(offset+size, len(items))]}
	if offset+size < len(items) {
		q.Set("$skipToken", encodeSkipToken(offset+size))
		scheme := "https"
		if ex.r.TLS == nil {
			scheme = "http"
		}
		page.NextLink = (&url.URL{Scheme: scheme, Host: ex.r.Host, Path: ex.r.URL.Path, RawQuery: q.Encode()}).String()
	}
	ex.writeJSON(http.StatusOK, page)
}
