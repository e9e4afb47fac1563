// Package doctor checks, without activating anything, whether mcp-gate can
// activate the roles, PIM groups and Azure roles a policy names: the
// sign-in, the token's permissions for each kind named, each target's
// resolution and eligibility (for an Azure role, with the ARM token, at
// its scope or above), and what each directory role's PIM settings ask of
// an activation. It prints a table, one line per target.
package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
)

// Client is the part of the PIM client the checks use.
type Client interface {
	TokenInfo(ctx context.Context) (pim.TokenInfo, error)
	Principal(ctx context.Context) (string, error)
	Resolve(ctx context.Context, t policy.Target) (string, error)
	EligibleFor(ctx context.Context, principal string, t policy.Target) (bool, error)
	RoleSettings(ctx context.Context, roleID string) (pim.RoleSettings, error)
}

// Role is one role, group or Azure role the policy names.
type Role struct {
	policy.Target
}

// name is how the table shows r: a directory role by its name, anything
// else as policy.Target says it.
func (r Role) name() string {
	if r.Kind == policy.KindRole {
		return r.Role
	}
	return r.String()
}

// permissions are the delegated Graph permissions activating roles needs.
func permissions(roles []Role) []pim.Permission {
	var out []pim.Permission
	var dir, groups, groupNames bool
	for _, r := range roles {
		switch {
		case r.Kind == policy.KindRole:
			dir = true
		case r.Kind == policy.KindGroup:
			groups = true
			groupNames = groupNames || !pim.IsGUID(r.Role)
		}
	}
	if dir {
		out = append(out, pim.DirectoryRolePermissions...)
	}
	if groups {
		out = append(out, pim.GroupPermissions...)
	}
	if groupNames {
		out = append(out, pim.GroupNamePermission)
	}
	return out
}

// Run checks the roles and writes the report to w. It returns the number
// of blockers: problems that stop an activation.
func Run(ctx context.Context, w io.Writer, c Client, roles []Role) int {
	blockers := 0
	info, err := c.TokenInfo(ctx)
	if err != nil {
		fmt.Fprintf(w, "sign-in:  FAIL: %s\n", pim.UserMessage(err))
		return 1
	}
	fmt.Fprintf(w, "sign-in:  %s, object id %s, tenant %s\n", orNone(info.User), orNone(info.ObjectID), orNone(info.TenantID))
	if missing := pim.MissingPermissions(info.Scopes, permissions(roles)); len(missing) > 0 {
		blockers++
		var names []string
		for _, p := range missing {
			names = append(names, p.Name)
		}
		fmt.Fprintf(w, "scopes:   BLOCKER: the token lacks the delegated permission(s) %s (it has: %s); "+
			"sign in through your organisation's app registration that has them with admin consent (approvals.clientId, credential: browser or devicecode, `mcp-gate login`)\n",
			strings.Join(names, ", "), orNone(strings.Join(info.Scopes, " ")))
	} else {
		fmt.Fprintf(w, "scopes:   ok (%s)\n", strings.Join(info.Scopes, " "))
	}
	principal, err := c.Principal(ctx)
	if err != nil {
		fmt.Fprintf(w, "principal: BLOCKER: %s\n", pim.UserMessage(err))
		return blockers + 1
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tID\tELIGIBLE\tON ACTIVATION\tSTATUS")
	for _, role := range roles {
		row, blocked := check(ctx, c, principal, role, info)
		if blocked {
			blockers++
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	if blockers > 0 {
		fmt.Fprintf(w, "%d blocker(s): activation cannot work until they are fixed\n", blockers)
	} else {
		fmt.Fprintln(w, "ok: every role and group can be activated")
	}
	return blockers
}

// check makes one table row for role.
func check(ctx context.Context, c Client, principal string, role Role, info pim.TokenInfo) (string, bool) {
	row := func(id, eligible, needs, status string) string {
		return strings.Join([]string{role.name(), id, eligible, needs, status}, "\t")
	}
	id, err := c.Resolve(ctx, role.Target)
	if err != nil {
		return row("-", "-", "-", "BLOCKER: "+pim.UserMessage(err)), true
	}
	resolved := role.Target
	resolved.Role = id
	ok, err := c.EligibleFor(ctx, principal, resolved)
	switch {
	case err != nil:
		return row(id, "?", "-", "BLOCKER: "+pim.UserMessage(err)), true
	case !ok:
		return row(id, "no", "-", "BLOCKER: you are not eligible: ask an administrator for an eligible PIM assignment"), true
	}
	if role.Kind == policy.KindGroup {
		// PIM for Groups keeps its settings per group and access
		// (scopeType Group), which this doctor does not read: an activation
		// meets them as Graph answers.
		return row(id, "yes", "not checked for groups", "ok"), false
	}
	if role.Kind == policy.KindAzureRole {
		// An Azure role's settings are ARM's roleManagementPolicies at
		// the scope, which this doctor does not read either.
		return row(id, "yes", "not checked for Azure roles", "ok"), false
	}
	s, err := c.RoleSettings(ctx, id)
	if err != nil {
		return row(id, "yes", "?", "warning: cannot read the role's PIM settings: "+pim.UserMessage(err)), false
	}
	return row(id, "yes", needs(s), status(s, info)), false
}

// needs lists what the role's settings ask of an activation.
func needs(s pim.RoleSettings) string {
	var out []string
	if s.MFA {
		out = append(out, "MFA")
	}
	if s.AuthContext != "" {
		out = append(out, "auth context "+s.AuthContext)
	}
	if s.Justification {
		out = append(out, "justification")
	}
	if s.Ticket {
		out = append(out, "ticket")
	}
	if s.Approval {
		out = append(out, "approval")
	}
	if s.MaxDuration > 0 {
		out = append(out, "max "+strings.TrimSuffix(strings.TrimSuffix(s.MaxDuration.Round(time.Minute).String(), "0s"), "0m"))
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, ", ")
}

// status says what the user will meet on activating, given their token.
func status(s pim.RoleSettings, info pim.TokenInfo) string {
	var notes []string
	if s.MFA && !contains(info.AMR, "mfa") {
		notes = append(notes, "you will be asked to sign in again with MFA")
	}
	if s.AuthContext != "" && !contains(info.ACRS, s.AuthContext) {
		notes = append(notes, "you will be asked to sign in again for authentication context "+s.AuthContext)
	}
	if s.Approval {
		notes = append(notes, "an approver must approve each activation")
	}
	if len(notes) == 0 {
		return "ok"
	}
	return "ok; " + strings.Join(notes, "; ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
