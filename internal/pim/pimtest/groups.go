package pimtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// PIM for Groups: the Graph v1.0 endpoints under
// /identityGovernance/privilegedAccess/group that activate a group's
// membership or ownership, and the /groups lookups that resolve a group's
// name. Requests share the directory roles' lifecycle (statuses, approver,
// rules, errors); only the paths, the bodies and the permissions differ.

const (
	groupPIMPrefix = "/identityGovernance/privilegedAccess/group/"
	groupsPath     = "/groups"
)

// Delegated permissions that admit each kind of PIM for Groups call, least
// privileged first, as Graph's permission tables list them.
var (
	scopesGroupActivate        = []string{"PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup"}
	scopesGroupReadAssignments = []string{"PrivilegedAssignmentSchedule.Read.AzureADGroup", "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup"}
	scopesGroupReadEligibility = []string{"PrivilegedEligibilitySchedule.Read.AzureADGroup", "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup"}
	scopesReadGroups           = []string{"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All", "Group.ReadWrite.All",
		"Directory.ReadWrite.All", "Directory.AccessAsUser.All"}
)

// groupDirectory is the scenario's PIM groups, indexed.
type groupDirectory struct {
	list         []*Role // a group's settings are a Role's (see Group)
	byID, byName map[string]*Role
	eligible     map[groupKey]bool
	// eligibility lists every (principal, group, access), by group, then
	// user in scenario order, then access; eligibleOf is each principal's share.
	eligibility []groupKey
	eligibleOf  map[string][]groupKey
}

type groupKey struct{ principal, groupID, accessID string }

func (g *groupDirectory) index(users []string) {
	g.eligibleOf = map[string][]groupKey{}
	for _, grp := range g.list {
		for _, u := range users {
			for _, access := range []string{AccessMember, AccessOwner} {
				if k := (groupKey{u, grp.ID, access}); g.eligible[k] {
					g.eligibility = append(g.eligibility, k)
					g.eligibleOf[u] = append(g.eligibleOf[u], k)
				}
			}
		}
	}
}

// groupRequestBody is what a client POSTs to
// privilegedAccess/group/assignmentScheduleRequests.
type groupRequestBody struct {
	Action        string        `json:"action"`
	PrincipalID   string        `json:"principalId"`
	GroupID       string        `json:"groupId"`
	AccessID      string        `json:"accessId"`
	Justification string        `json:"justification"`
	ScheduleInfo  *scheduleInfo `json:"scheduleInfo"`
	TicketInfo    *ticketInfo   `json:"ticketInfo"`
}

// groupRequestJSON is a privilegedAccessGroupAssignmentScheduleRequest.
type groupRequestJSON struct {
	Context           string       `json:"@odata.context,omitempty"`
	ID                string       `json:"id"`
	Status            string       `json:"status"`
	CompletedDateTime *time.Time   `json:"completedDateTime"`
	CreatedDateTime   time.Time    `json:"createdDateTime"`
	ApprovalID        *string      `json:"approvalId"`
	CustomData        *string      `json:"customData"`
	CreatedBy         identitySet  `json:"createdBy"`
	Action            string       `json:"action"`
	IsValidationOnly  bool         `json:"isValidationOnly"`
	Justification     *string      `json:"justification"`
	ScheduleInfo      scheduleInfo `json:"scheduleInfo"`
	TicketInfo        ticketInfo   `json:"ticketInfo"`
	AccessID          string       `json:"accessId"`
	PrincipalID       string       `json:"principalId"`
	GroupID           string       `json:"groupId"`
	TargetScheduleID  string       `json:"targetScheduleId"`
}

// groupAssignmentInstanceJSON is a privilegedAccessGroupAssignmentScheduleInstance.
type groupAssignmentInstanceJSON struct {
	ID                   string     `json:"id"`
	StartDateTime        time.Time  `json:"startDateTime"`
	EndDateTime          *time.Time `json:"endDateTime"`
	AccessID             string     `json:"accessId"`
	PrincipalID          string     `json:"principalId"`
	GroupID              string     `json:"groupId"`
	MemberType           string     `json:"memberType"`
	AssignmentType       string     `json:"assignmentType"`
	AssignmentScheduleID string     `json:"assignmentScheduleId"`
}

// groupEligibilityInstanceJSON is a privilegedAccessGroupEligibilityScheduleInstance.
type groupEligibilityInstanceJSON struct {
	ID                    string     `json:"id"`
	StartDateTime         time.Time  `json:"startDateTime"`
	EndDateTime           *time.Time `json:"endDateTime"`
	MemberType            string     `json:"memberType"`
	PrincipalID           string     `json:"principalId"`
	AccessID              string     `json:"accessId"`
	GroupID               string     `json:"groupId"`
	EligibilityScheduleID string     `json:"eligibilityScheduleId"`
}

// groupJSON is a group with the properties the emulator knows.
type groupJSON struct {
	ID              string   `json:"id"`
	DisplayName     string   `json:"displayName"`
	Description     string   `json:"description"`
	GroupTypes      []string `json:"groupTypes"`
	MailEnabled     bool     `json:"mailEnabled"`
	MailNickname    string   `json:"mailNickname"`
	SecurityEnabled bool     `json:"securityEnabled"`
}

// serveGroups answers the PIM for Groups and /groups paths, and reports
// false for any other path.
func (s *Server) serveGroups(ex *exchange, c caller, path string) bool {
	if path == groupsPath || strings.HasPrefix(path, groupsPath+"/") {
		if checkMethod(ex, http.MethodGet) && requireScopes(ex, c, scopesReadGroups, "Authorization_RequestDenied") {
			s.groupsLookup(ex, strings.TrimPrefix(path, groupsPath))
		}
		return true
	}
	rest, ok := strings.CutPrefix(path, groupPIMPrefix)
	if !ok {
		return false
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	post := ex.r.Method == http.MethodPost
	switch segs[0] {
	case "assignmentScheduleRequests", "assignmentScheduleInstances":
		need := scopesGroupReadAssignments
		if post {
			need = scopesGroupActivate
		}
		if !requireScopes(ex, c, need, "PermissionScopeNotGranted") {
			return true
		}
	case "eligibilityScheduleInstances":
		if !requireScopes(ex, c, scopesGroupReadEligibility, "PermissionScopeNotGranted") {
			return true
		}
	}
	switch {
	case segs[0] == "assignmentScheduleRequests" && len(segs) == 1:
		if checkMethod(ex, http.MethodPost) {
			s.createGroupRequest(ex, c)
		}
	case segs[0] == "assignmentScheduleRequests" && len(segs) == 2 && isCurrentUser(segs[1]):
		if checkMethod(ex, http.MethodGet) && checkCurrentUser(ex, segs[1]) {
			s.listGroupRequests(ex, c)
		}
	case segs[0] == "assignmentScheduleRequests" && len(segs) == 2:
		if checkMethod(ex, http.MethodGet) {
			s.getGroupRequest(ex, segs[1])
		}
	case segs[0] == "assignmentScheduleRequests" && len(segs) == 3 && segs[2] == "cancel":
		if checkMethod(ex, http.MethodPost) {
			s.cancelRequest(ex, c, segs[1], true)
		}
	case segs[0] == "assignmentScheduleInstances" && len(segs) == 2 && isCurrentUser(segs[1]):
		if checkMethod(ex, http.MethodGet) && checkCurrentUser(ex, segs[1]) {
			s.listGroupAssignments(ex, c)
		}
	case segs[0] == "eligibilityScheduleInstances" && len(segs) == 2 && isCurrentUser(segs[1]):
		if checkMethod(ex, http.MethodGet) && checkCurrentUser(ex, segs[1]) {
			s.listGroupEligibilities(ex, c)
		}
	default:
		ex.fail(notFoundSegment(segs[len(segs)-1]))
	}
	return true
}

func (s *Server) createGroupRequest(ex *exchange, c caller) {
	var b groupRequestBody
	if !decodeBody(ex, &b) {
		return
	}
	s.mu.Lock()
	r, gerr := s.st.createGroup(c, b, s.clock.Now())
	var out groupRequestJSON
	if gerr == nil {
		out = r.groupJSON()
		out.Status = r.createStatus
	}
	s.mu.Unlock()
	if !s.created(ex, gerr) {
		return
	}
	out.Context = ex.metadata("identityGovernance/privilegedAccess/group/assignmentScheduleRequests/$entity")
	ex.w.Header().Set("Location", ex.base()+groupPIMPrefix+"assignmentScheduleRequests/"+out.ID)
	ex.writeJSON(http.StatusCreated, out)
}

// createGroup validates a PIM for Groups request body as Graph does and
// records it.
func (st *state) createGroup(c caller, b groupRequestBody, now time.Time) (*request, *graphError) {
	st.settle(now)
	if gerr := checkAction(b.Action); gerr != nil {
		return nil, gerr
	}
	if b.PrincipalID == "" || b.GroupID == "" || b.AccessID == "" {
		return nil, badRequest("principalId, groupId and accessId are required.")
	}
	if b.AccessID != AccessMember && b.AccessID != AccessOwner {
		return nil, badRequest("The accessId %q is not member or owner.", b.AccessID)
	}
	principal, gerr := st.self(c, b.PrincipalID)
	if gerr != nil {
		return nil, gerr
	}
	g := st.dir.groups.byID[strings.ToLower(b.GroupID)]
	if g == nil {
		return nil, &graphError{http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The group %s was not found or is not managed by PIM.", b.GroupID)}
	}
	r := &request{Request: Request{ID: newID(), Action: b.Action, Principal: principal, GroupID: g.ID, AccessID: b.AccessID,
		Justification: b.Justification, Created: now}}
	return st.submit(c, r, g, b.ScheduleInfo, b.TicketInfo, st.dir.groups.eligible[groupKey{principal, g.ID, b.AccessID}], now)
}

func (s *Server) getGroupRequest(ex *exchange, id string) {
	s.mu.Lock()
	r, gerr := s.st.get(id, true, s.clock.Now())
	var out groupRequestJSON
	if gerr == nil {
		out = r.groupJSON()
	}
	s.mu.Unlock()
	if gerr != nil {
		ex.fail(gerr)
		return
	}
	out.Context = ex.metadata("identityGovernance/privilegedAccess/group/assignmentScheduleRequests/$entity")
	ex.writeJSON(http.StatusOK, out)
}

func (s *Server) listGroupRequests(ex *exchange, c caller) {
	cs, ok := filterOf(ex, "status", "groupId", "principalId", "action", "accessId")
	if !ok {
		return
	}
	s.mu.Lock()
	s.st.settle(s.clock.Now())
	var out []groupRequestJSON
	for _, r := range s.st.requestsOf[c.oid] {
		if r.target().isGroup() && matches(cs, r.groupField) {
			out = append(out, r.groupJSON())
		}
	}
	s.mu.Unlock()
	writePage(ex, ex.metadata("Collection(privilegedAccessGroupAssignmentScheduleRequest)"), out)
}

func (s *Server) listGroupAssignments(ex *exchange, c caller) {
	out, ok := liveInstances(s, ex, []string{"groupId", "principalId", "accessId", "assignmentType", "memberType"},
		func(st *state) []*assignment { return st.assignmentsOf[c.oid] }, (*assignment).isGroup, (*assignment).groupJSON)
	if !ok {
		return
	}
	writePage(ex, ex.metadata("Collection(privilegedAccessGroupAssignmentScheduleInstance)"), out)
}

func (s *Server) listGroupEligibilities(ex *exchange, c caller) {
	cs, ok := filterOf(ex, "groupId", "principalId", "accessId", "memberType")
	if !ok {
		return
	}
	// Eligibilities never change after start, so no lock is needed.
	var out []groupEligibilityInstanceJSON
	for _, k := range s.dir.groups.eligibleOf[c.oid] {
		id := derivedGUIDOf("group eligibility " + k.principal + " " + k.groupID + " " + k.accessID)
		v := groupEligibilityInstanceJSON{
			ID: id, StartDateTime: s.st.started.UTC(), MemberType: "Direct",
			PrincipalID: k.principal, AccessID: k.accessID, GroupID: k.groupID, EligibilityScheduleID: id,
		}
		if matches(cs, v.field) {
			out = append(out, v)
		}
	}
	writePage(ex, ex.metadata("Collection(privilegedAccessGroupEligibilityScheduleInstance)"), out)
}

// groupsLookup answers GET /groups (with $filter on displayName or id, and
// $select) and GET /groups/{id}.
func (s *Server) groupsLookup(ex *exchange, rest string) {
	sel, ok := selectOf(ex)
	if !ok {
		return
	}
	if id := strings.TrimPrefix(rest, "/"); id != "" {
		g := s.dir.groups.byID[strings.ToLower(id)]
		if g == nil || strings.Contains(id, "/") {
			ex.fail(&graphError{http.StatusNotFound, "Request_ResourceNotFound",
				fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)})
			return
		}
		v := selected(groupOf(g), sel)
		v["@odata.context"] = ex.metadata("groups" + selectContext(sel) + "/$entity")
		ex.writeJSON(http.StatusOK, v)
		return
	}
	cs, ok := filterOf(ex, "displayName", "id")
	if !ok {
		return
	}
	var out []map[string]any
	for _, g := range s.dir.groups.list {
		v := groupOf(g)
		if matches(cs, v.field) {
			out = append(out, selected(v, sel))
		}
	}
	writePage(ex, ex.metadata("groups"+selectContext(sel)), out)
}

func groupOf(g *Role) groupJSON {
	return groupJSON{ID: g.ID, DisplayName: g.DisplayName, Description: "Emulated PIM group " + g.DisplayName + ".",
		GroupTypes: []string{}, MailNickname: strings.ToLower(strings.Join(strings.Fields(g.DisplayName), "-")), SecurityEnabled: true}
}

func (v groupJSON) field(name string) string {
	switch name {
	case "displayName":
		return v.DisplayName
	case "id":
		return v.ID
	}
	return ""
}

// selectOf reads $select, answering 400 itself for a property groups do
// not have, as Graph does.
func selectOf(ex *exchange) ([]string, bool) {
	raw := ex.r.URL.Query().Get("$select")
	if raw == "" {
		return nil, true
	}
	known := []string{"id", "displayName", "description", "groupTypes", "mailEnabled", "mailNickname", "securityEnabled"}
	var sel []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		i := slices.IndexFunc(known, func(k string) bool { return strings.EqualFold(k, p) })
		if i < 0 {
			ex.fail(badRequest("Could not find a property named '%s' on type 'microsoft.graph.group'.", p))
			return nil, false
		}
		sel = append(sel, known[i])
	}
	return sel, true
}

// selected is v as a JSON object with only the properties in sel (all
// when sel is empty).
func selected(v groupJSON, sel []string) map[string]any {
	var all map[string]any
	b, _ := json.Marshal(v) // plain struct: cannot fail
	_ = json.Unmarshal(b, &all)
	if len(sel) == 0 {
		return all
	}
	out := make(map[string]any, len(sel))
	for _, p := range sel {
		out[p] = all[p]
	}
	return out
}

func selectContext(sel []string) string {
	if len(sel) == 0 {
		return ""
	}
	return "(" + strings.Join(sel, ",") + ")"
}

func (r *request) groupJSON() groupRequestJSON {
	out := groupRequestJSON{
		ID:               r.ID,
		Status:           r.Status,
		CreatedDateTime:  r.Created.UTC(),
		Action:           r.Action,
		PrincipalID:      r.Principal,
		GroupID:          r.GroupID,
		AccessID:         r.AccessID,
		TargetScheduleID: r.GroupID + "_" + r.AccessID + "_" + r.scheduleID,
		CreatedBy:        identitySet{User: &identity{ID: r.Principal}},
		ScheduleInfo:     r.given,
		TicketInfo:       r.ticket,
	}
	out.CompletedDateTime, out.ApprovalID, out.Justification = r.nullables()
	return out
}

// groupField adds a group request's own properties to those every request
// has; filterOf admits only the names a group request's $filter knows.
func (r *request) groupField(name string) string {
	switch name {
	case "groupId":
		return r.GroupID
	case "accessId":
		return r.AccessID
	}
	return r.field(name)
}

func (a *assignment) groupJSON() groupAssignmentInstanceJSON {
	out := groupAssignmentInstanceJSON{
		ID:                   a.id,
		StartDateTime:        a.start.UTC(),
		AccessID:             a.accessID,
		PrincipalID:          a.principal,
		GroupID:              a.groupID,
		MemberType:           "Direct",
		AssignmentType:       a.kind,
		AssignmentScheduleID: a.groupID + "_" + a.accessID + "_" + a.scheduleID,
	}
	if a.end != nil {
		t := a.end.UTC()
		out.EndDateTime = &t
	}
	return out
}

func (v groupAssignmentInstanceJSON) field(name string) string {
	switch name {
	case "groupId":
		return v.GroupID
	case "principalId":
		return v.PrincipalID
	case "accessId":
		return v.AccessID
	case "assignmentType":
		return v.AssignmentType
	case "memberType":
		return v.MemberType
	}
	return ""
}

func (v groupEligibilityInstanceJSON) field(name string) string {
	switch name {
	case "groupId":
		return v.GroupID
	case "principalId":
		return v.PrincipalID
	case "accessId":
		return v.AccessID
	case "memberType":
		return v.MemberType
	}
	return ""
}
