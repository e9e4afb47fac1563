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
// they may activate, how approvers behave and which faults to inject.
type Scenario struct {
	TenantID      string        `yaml:"tenantId"` // tid of minted tokens; a fixed GUID when empty
	Users         []User        `yaml:"users"`
	Roles         []Role        `yaml:"roles"`
	Eligibilities []Eligibility `yaml:"eligibilities"`
	Active        []Assignment  `yaml:"active"`
	Approver      Approver      `yaml:"approver"`
	Faults        Faults        `yaml:"faults"`
	PageSize      int           `yaml:"pageSize"` // items per list page; 0 means 100
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

// Eligibility makes Principal eligible to activate Role (an id or display name).
type Eligibility struct {
	Principal string `yaml:"principal"`
	Role      string `yaml:"role"`
}

// Assignment is an assignment that is already active when the emulator
// starts. It ends at End, else Duration after start; with neither it is
// permanent.
type Assignment struct {
	Principal string        `yaml:"principal"`
	Role      string        `yaml:"role"`
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
	active      []Assignment // Role resolved to an id
	pageSize    int
}

type roleKey struct{ principal, role string }

// normalize validates the scenario, reporting every problem at once, and
// indexes it.
func (sc Scenario) normalize() (*directory, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	d := &directory{
		tenantID: sc.TenantID,
		users:    map[string]User{},
		byName:   map[string]string{},
		roleByID: map[string]*Role{},
		eligible: map[roleKey]bool{},
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
	byName := map[string]*Role{}
	for i := range sc.Roles {
		r := sc.Roles[i]
		if r.DisplayName == "" {
			bad("roles[%d]: displayName is empty", i)
			continue
		}
		if r.ID == "" {
			r.ID = derivedGUID(r.DisplayName)
		}
		r.ID = strings.ToLower(r.ID)
		if r.MaxDuration == 0 {
			r.MaxDuration = defaultMaxDuration
		}
		switch {
		case !isGUID(r.ID):
			bad("roles[%d] %q: id %q is not a GUID", i, r.DisplayName, r.ID)
			continue
		case d.roleByID[r.ID] != nil:
			bad("roles[%d] %q: duplicate id %s", i, r.DisplayName, r.ID)
			continue
		case byName[strings.ToLower(r.DisplayName)] != nil:
			bad("roles[%d]: duplicate displayName %q", i, r.DisplayName)
			continue
		case r.MaxDuration < 0:
			bad("roles[%d] %q: maxDuration %v is negative", i, r.DisplayName, r.MaxDuration)
		}
		if r.Approver != nil {
			if err := r.Approver.validate(); err != nil {
				bad("roles[%d] %q: approver: %w", i, r.DisplayName, err)
			}
		} else {
			a := sc.Approver
			r.Approver = &a
		}
		if r.Approver.Mode == "" {
			r.Approver.Mode = ApproveManual
		}
		d.roles = append(d.roles, &r)
		d.roleByID[r.ID] = &r
		byName[strings.ToLower(r.DisplayName)] = &r
	}
	if err := sc.Approver.validate(); err != nil {
		bad("approver: %w", err)
	}
	resolve := func(what string, i int, principal, role string) (roleKey, bool) {
		p := strings.ToLower(principal)
		if _, ok := d.users[p]; !ok {
			bad("%s[%d]: principal %q is not a user", what, i, principal)
			return roleKey{}, false
		}
		r := d.roleByID[strings.ToLower(role)]
		if r == nil {
			r = byName[strings.ToLower(role)]
		}
		if r == nil {
			bad("%s[%d]: role %q is not a role", what, i, role)
			return roleKey{}, false
		}
		return roleKey{p, r.ID}, true
	}
	for i, e := range sc.Eligibilities {
		if k, ok := resolve("eligibilities", i, e.Principal, e.Role); ok {
			d.eligible[k] = true
		}
	}
	for i, a := range sc.Active {
		k, ok := resolve("active", i, a.Principal, a.Role)
		if a.Duration < 0 {
			bad("active[%d]: duration %v is negative", i, a.Duration)
			ok = false
		}
		if ok {
			a.Principal, a.Role = k.principal, k.role
			d.active = append(d.active, a)
		}
	}
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
func derivedGUID(name string) string {
	h := sha1.Sum([]byte("pimtest role " + name))
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
