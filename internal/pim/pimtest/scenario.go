package pimtest

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is the directory the emulator serves: who exists, which roles
// and groups they may activate, how approvers behave and which faults to
// inject.
type Scenario struct {
	TenantID string  `yaml:"tenantId"` // tid of minted tokens; a fixed GUID when empty
	Users    []User  `yaml:"users"`
	Roles    []Role  `yaml:"roles"`
	Groups   []Group `yaml:"groups"` // PIM for Groups
	// AzureRoles are Azure RBAC role definitions (ARM), assignable at any
	// scope; AzureEligibilities make users eligible for them at a scope.
	AzureRoles         []AzureRole        `yaml:"azureRoles"`
	AzureEligibilities []AzureEligibility `yaml:"azureEligibilities"`
	Eligibilities      []Eligibility      `yaml:"eligibilities"`
	Active             []Assignment       `yaml:"active"`
	Approver           Approver           `yaml:"approver"`
	Faults             Faults             `yaml:"faults"`
	PageSize           int                `yaml:"pageSize"` // items per list page; 0 means 100
}

// User is a directory user; ID is the Entra object id (oid).
type User struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// Role is a directory role definition with its PIM activation settings.
type Role struct {
	ID                    string        `yaml:"id"` // derived from DisplayName when empty
	DisplayName           string        `yaml:"displayName"`
	RequiresApproval      bool          `yaml:"requiresApproval"`
	MaxDuration           time.Duration `yaml:"maxDuration"` // 0 means 8h
	RequiresJustification bool          `yaml:"requiresJustification"`
	RequiresTicket        bool          `yaml:"requiresTicket"`
	RequiresMFA           bool          `yaml:"requiresMFA"`
	AuthContext           string        `yaml:"authContext"` // a Conditional Access authentication context (acrs) activation requires, e.g. c1
	Approver              *Approver     `yaml:"approver"`    // overrides Scenario.Approver for this role
}

// Group is a group whose membership and ownership PIM for Groups
// governs. Its fields are a Role's: ID (the group's object id, derived
// from DisplayName when empty), DisplayName, and the activation settings,
// which the emulator applies to both member and owner access (Entra keeps
// a policy per access).
type Group Role

// Access values of PIM for Groups (accessId).
const (
	AccessMember = "member"
	AccessOwner  = "owner"
)

// Eligibility makes Principal eligible to activate Role (an id or display
// name) or, with Group (likewise) instead, the group's Access: member
// (the default) or owner.
type Eligibility struct {
	Principal string `yaml:"principal"`
	Role      string `yaml:"role"`
	Group     string `yaml:"group"`
	Access    string `yaml:"access"`
}

// Assignment is an assignment of Role, or of Group's Access, that is
// already active when the emulator starts. It ends at End, else Duration
// after start; with neither it is permanent.
type Assignment struct {
	Principal string        `yaml:"principal"`
	Role      string        `yaml:"role"`
	Group     string        `yaml:"group"`
	Access    string        `yaml:"access"`
	End       time.Time     `yaml:"end"`
	Duration  time.Duration `yaml:"duration"`
}

// Approver modes.
const (
	ApproveManual = "manual"  // wait for Approve or Deny
	ApproveAuto   = "approve" // approve After the request was created
	DenyAuto      = "deny"    // deny After the request was created
)

// Approver says what happens to requests for roles that need approval.
type Approver struct {
	Mode  string        `yaml:"mode"` // manual (default), approve or deny
	After time.Duration `yaml:"after"`
}

// Faults are failures injected into Graph API requests (never into the
// /_emulator admin paths). Counting starts again when faults are set.
type Faults struct {
	ThrottleEvery int           `yaml:"throttleEvery"` // every Nth request gets 429
	RetryAfter    string        `yaml:"retryAfter"`    // Retry-After on 429 and 5xx, e.g. "2" or "0.5"
	ErrorRate     float64       `yaml:"errorRate"`     // fraction of requests answered with ErrorStatus
	ErrorStatus   int           `yaml:"errorStatus"`   // 500-599; 0 means 503
	Seed          uint64        `yaml:"seed"`          // seeds the ErrorRate draw so runs repeat
	Latency       time.Duration `yaml:"latency"`       // added before every request is handled
	DropEvery     int           `yaml:"dropEvery"`     // every Nth request: connection closed, no reply, nothing done
	// AssignmentReadStatus, when set, answers every read of
	// roleAssignmentScheduleInstances with this status: 403
	// Authorization_RequestDenied (as for a token without read permission on
	// assignments) or a 5xx ServiceUnavailable. Other requests are served.
	// The same holds for PIM for Groups' assignmentScheduleInstances.
	AssignmentReadStatus int `yaml:"assignmentReadStatus"`
}

// LoadScenario reads a YAML scenario; unknown keys are errors.
func LoadScenario(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("read scenario: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return Scenario{}, fmt.Errorf("scenario %s: %w", path, err)
	}
	if _, err := sc.normalize(); err != nil {
		return Scenario{}, fmt.Errorf("scenario %s: %w", path, err)
	}
	return sc, nil
}

const (
	defaultTenantID    = "72f988bf-0000-4000-8000-000000000001"
	defaultPageSize    = 100
	defaultMaxDuration = 8 * time.Hour
)

// directory is a validated scenario indexed for lookups.
type directory struct {
	tenantID  string
	users     map[string]User
	userOrder []string          // oids in scenario order
	byName    map[string]string // lower-cased user name -> oid
	roles     []*Role           // in scenario order
	roleByID  map[string]*Role
	eligible  map[roleKey]bool
	// eligibility lists every (principal, role) pair, by role then user in
	// scenario order; eligibleOf holds each principal's share of it.
	eligibility []roleKey
	eligibleOf  map[string][]roleKey
	groups      groupDirectory
	azure       azureDirectory
	active      []activeAt
	pageSize    int
}

type roleKey struct{ principal, role string }

// activeAt is a scenario assignment with its principal and target resolved.
type activeAt struct {
	Assignment
	target
}

// normalize validates the scenario, reporting every problem at once, and
// indexes it.
func (sc Scenario) normalize() (*directory, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	d := &directory{
		tenantID: sc.TenantID,
		users:    map[string]User{},
		byName:   map[string]string{},
		eligible: map[roleKey]bool{},
		groups:   groupDirectory{eligible: map[groupKey]bool{}},
		pageSize: sc.PageSize,
	}
	if d.tenantID == "" {
		d.tenantID = defaultTenantID
	} else if !isGUID(d.tenantID) {
		bad("tenantId %q is not a GUID", d.tenantID)
	}
	if d.pageSize == 0 {
		d.pageSize = defaultPageSize
	} else if d.pageSize < 0 {
		bad("pageSize %d is negative", d.pageSize)
	}
	for i, u := range sc.Users {
		u.ID = strings.ToLower(u.ID)
		switch {
		case !isGUID(u.ID):
			bad("users[%d]: id %q is not a GUID", i, u.ID)
		case d.users[u.ID].ID != "":
			bad("users[%d]: duplicate id %s", i, u.ID)
		default:
			d.users[u.ID] = u
			d.userOrder = append(d.userOrder, u.ID)
			if u.Name != "" {
				d.byName[strings.ToLower(u.Name)] = u.ID
			}
		}
	}
	var byName map[string]*Role
	d.roles, d.roleByID, byName = normalizeRoles("roles", sc.Roles, sc.Approver, "pimtest role ", bad)
	groups := make([]Role, len(sc.Groups))
	for i, g := range sc.Groups {
		groups[i] = Role(g)
	}
	d.groups.list, d.groups.byID, d.groups.byName = normalizeRoles("groups", groups, sc.Approver, "pimtest group ", bad)
	if err := sc.Approver.validate(); err != nil {
		bad("approver: %w", err)
	}
	// resolve finds the principal and the role or group access an
	// eligibility or assignment names.
	resolve := func(what string, i int, principal, role, group, access string) (string, target, bool) {
		p := strings.ToLower(principal)
		if _, ok := d.users[p]; !ok {
			bad("%s[%d]: principal %q is not a user", what, i, principal)
			return "", target{}, false
		}
		if (role == "") == (group == "") {
			bad("%s[%d]: name exactly one of role and group", what, i)
			return "", target{}, false
		}
		if group != "" {
			g := d.groups.byID[strings.ToLower(group)]
			if g == nil {
				g = d.groups.byName[strings.ToLower(group)]
			}
			switch access {
			case "":
				access = AccessMember
			case AccessMember, AccessOwner:
			default:
				bad("%s[%d]: access %q is not member or owner", what, i, access)
				return "", target{}, false
			}
			if g == nil {
				bad("%s[%d]: group %q is not a group", what, i, group)
				return "", target{}, false
			}
			return p, target{groupID: g.ID, accessID: access}, true
		}
		if access != "" {
			bad("%s[%d]: access is for a group, not role %q", what, i, role)
			return "", target{}, false
		}
		r := d.roleByID[strings.ToLower(role)]
		if r == nil {
			r = byName[strings.ToLower(role)]
		}
		if r == nil {
			bad("%s[%d]: role %q is not a role", what, i, role)
			return "", target{}, false
		}
		return p, target{roleID: r.ID}, true
	}
	for i, e := range sc.Eligibilities {
		p, t, ok := resolve("eligibilities", i, e.Principal, e.Role, e.Group, e.Access)
		switch {
		case !ok:
		case t.isGroup():
			d.groups.eligible[groupKey{p, t.groupID, t.accessID}] = true
		default:
			d.eligible[roleKey{p, t.roleID}] = true
		}
	}
	for i, a := range sc.Active {
		p, t, ok := resolve("active", i, a.Principal, a.Role, a.Group, a.Access)
		if a.Duration < 0 {
			bad("active[%d]: duration %v is negative", i, a.Duration)
			ok = false
		}
		if ok {
			a.Principal = p
			d.active = append(d.active, activeAt{a, t})
		}
	}
	d.groups.index(d.userOrder)
	d.azure = sc.normalizeAzure(d, bad)
	d.eligibleOf = map[string][]roleKey{}
	for _, r := range d.roles {
		for _, u := range d.userOrder {
			if k := (roleKey{u, r.ID}); d.eligible[k] {
				d.eligibility = append(d.eligibility, k)
				d.eligibleOf[u] = append(d.eligibleOf[u], k)
			}
		}
	}
	if err := sc.Faults.validate(); err != nil {
		bad("faults: %w", err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// normalizeRoles validates and indexes the roles (or groups) listed under
// what, giving one without an id the id derived from seed and its name.
func normalizeRoles(what string, in []Role, approver Approver, seed string, bad func(string, ...any)) (list []*Role, byID, byName map[string]*Role) {
	byID, byName = map[string]*Role{}, map[string]*Role{}
	for i := range in {
		r := in[i]
		if r.DisplayName == "" {
			bad("%s[%d]: displayName is empty", what, i)
			continue
		}
		if r.ID == "" {
			r.ID = derivedGUIDOf(seed + r.DisplayName)
		}
		r.ID = strings.ToLower(r.ID)
		if r.MaxDuration == 0 {
			r.MaxDuration = defaultMaxDuration
		}
		switch {
		case !isGUID(r.ID):
			bad("%s[%d] %q: id %q is not a GUID", what, i, r.DisplayName, r.ID)
			continue
		case byID[r.ID] != nil:
			bad("%s[%d] %q: duplicate id %s", what, i, r.DisplayName, r.ID)
			continue
		case byName[strings.ToLower(r.DisplayName)] != nil:
			bad("%s[%d]: duplicate displayName %q", what, i, r.DisplayName)
			continue
		case r.MaxDuration < 0:
			bad("%s[%d] %q: maxDuration %v is negative", what, i, r.DisplayName, r.MaxDuration)
		}
		if r.Approver != nil {
			if err := r.Approver.validate(); err != nil {
				bad("%s[%d] %q: approver: %w", what, i, r.DisplayName, err)
			}
		} else {
			a := approver
			r.Approver = &a
		}
		if r.Approver.Mode == "" {
			r.Approver.Mode = ApproveManual
		}
		list = append(list, &r)
		byID[r.ID] = &r
		byName[strings.ToLower(r.DisplayName)] = &r
	}
	return list, byID, byName
}

func (a Approver) validate() error {
	switch a.Mode {
	case "", ApproveManual, ApproveAuto, DenyAuto:
	default:
		return fmt.Errorf("mode %q is not manual, approve or deny", a.Mode)
	}
	if a.After < 0 {
		return fmt.Errorf("after %v is negative", a.After)
	}
	return nil
}

func (f Faults) validate() error {
	var errs []error
	if f.ThrottleEvery < 0 || f.DropEvery < 0 {
		errs = append(errs, errors.New("throttleEvery and dropEvery must not be negative"))
	}
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("errorRate %v is not between 0 and 1", f.ErrorRate))
	}
	if f.ErrorStatus != 0 && (f.ErrorStatus < 500 || f.ErrorStatus > 599) {
		errs = append(errs, fmt.Errorf("errorStatus %d is not a 5xx status", f.ErrorStatus))
	}
	if f.AssignmentReadStatus != 0 && f.AssignmentReadStatus != 403 && (f.AssignmentReadStatus < 500 || f.AssignmentReadStatus > 599) {
		errs = append(errs, fmt.Errorf("assignmentReadStatus %d is not 403 or a 5xx status", f.AssignmentReadStatus))
	}
	if f.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %v is negative", f.Latency))
	}
	if f.RetryAfter != "" {
		if v, err := strconv.ParseFloat(f.RetryAfter, 64); err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("retryAfter %q is not a non-negative number of seconds", f.RetryAfter))
		}
	}
	return errors.Join(errs...)
}

// isGUID reports whether s has the 8-4-4-4-12 hex shape of an Entra id.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// derivedGUID gives a role without an id a stable one, so a scenario can
// name roles only and still be referred to by id across runs.
func derivedGUID(name string) string { return derivedGUIDOf("pimtest role " + name) }

func derivedGUIDOf(seed string) string {
	h := sha1.Sum([]byte(seed))
	h[6] = h[6]&0x0f | 0x50 // version 5
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// role finds a role by id or display name (case-insensitive).
func (d *directory) role(idOrName string) *Role {
	if r := d.roleByID[strings.ToLower(idOrName)]; r != nil {
		return r
	}
	for _, r := range d.roles {
		if strings.EqualFold(r.DisplayName, idOrName) {
			return r
		}
	}
	return nil
}
