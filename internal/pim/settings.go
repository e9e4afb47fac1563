package pim

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

const pathPolicyAssignments = "/policies/roleManagementPolicyAssignments"

// RoleSettings is what a role's PIM settings ask of an activation, read
// from its role management policy (the EndUser Assignment rules).
type RoleSettings struct {
	MFA           bool
	AuthContext   string // the authentication context (acrs) required, if any
	Justification bool
	Ticket        bool
	Approval      bool
	MaxDuration   time.Duration // 0: not stated
}

// Eligible reports whether principal (the signed-in user) has an eligible
// assignment of roleID at tenant scope.
func (c *Client) Eligible(ctx context.Context, principal, roleID string) (bool, error) {
	eligible, err := list[scheduleInstance](ctx, c, pathMyEligibilities)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(eligible, func(in scheduleInstance) bool { return in.matches(principal, mgpolicy.Target{Role: roleID}) }), nil
}

// RoleSettings reads the role management policy assigned to roleID.
func (c *Client) RoleSettings(ctx context.Context, roleID string) (RoleSettings, error) {
	filter := "scopeId eq '/' and scopeType eq 'DirectoryRole' and roleDefinitionId eq '" + strings.ReplaceAll(roleID, "'", "''") + "'"
	type rule struct {
		Type         string          `json:"@odata.type"`
		ID           string          `json:"id"`
		EnabledRules []string        `json:"enabledRules"`
		IsEnabled    bool            `json:"isEnabled"`
		ClaimValue   string          `json:"claimValue"`
		MaxDuration  string          `json:"maximumDuration"`
		Setting      json.RawMessage `json:"setting"`
	}
	type assignment struct {
		Policy struct {
			Rules []rule `json:"rules"`
		} `json:"policy"`
	}
	as, err := list[assignment](ctx, c, pathPolicyAssignments+"?$filter="+queryEscape(filter)+"&$expand="+queryEscape("policy($expand=rules)"))
	if err != nil {
		return RoleSettings{}, err
	}
	if len(as) == 0 {
		return RoleSettings{}, fmt.Errorf("pim: no role management policy is assigned to role %s", roleID)
	}
	var s RoleSettings
	for _, r := range as[0].Policy.Rules {
		switch r.ID {
		case "Enablement_EndUser_Assignment":
			s.MFA = slices.Contains(r.EnabledRules, "MultiFactorAuthentication")
			s.Justification = slices.Contains(r.EnabledRules, "Justification")
			s.Ticket = slices.Contains(r.EnabledRules, "Ticketing")
		case "AuthenticationContext_EndUser_Assignment":
			if r.IsEnabled {
				s.AuthContext = r.ClaimValue
			}
		case "Approval_EndUser_Assignment":
			var set struct {
				IsApprovalRequired bool `json:"isApprovalRequired"`
			}
			if json.Unmarshal(r.Setting, &set) == nil {
				s.Approval = set.IsApprovalRequired
			}
		case "Expiration_EndUser_Assignment":
			if d, err := parseISODuration(r.MaxDuration); err == nil {
				s.MaxDuration = d
			}
		}
	}
	return s, nil
}

// parseISODuration reads the PnDTnHnMnS durations Graph writes.
func parseISODuration(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration", s)
	}
	var d time.Duration
	inTime := false
	for rest != "" {
		if rest[0] == 'T' {
			inTime, rest = true, rest[1:]
			continue
		}
		i := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if i <= 0 {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration", s)
		}
		var n float64
		if _, err := fmt.Sscan(rest[:i], &n); err != nil {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration", s)
		}
		unit := map[string]time.Duration{"D": 24 * time.Hour, "H": time.Hour, "M": time.Minute, "S": time.Second}[rest[i:i+1]]
		if rest[i] == 'M' && !inTime {
			unit = 0 // months: not a fixed length
		}
		if unit == 0 {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration this client reads", s)
		}
		d += time.Duration(n * float64(unit))
		rest = rest[i+1:]
	}
	return d, nil
}
