package pim

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// The delegated Microsoft Graph permissions mcp-gate needs to activate
// Entra directory roles for the signed-in user, least privileged first.
const (
	ScopeActivate    = "RoleAssignmentSchedule.ReadWrite.Directory"
	ScopeEligibility = "RoleEligibilitySchedule.Read.Directory"
	ScopeRoles       = "RoleManagement.Read.Directory"
)

// The delegated Microsoft Graph permissions mcp-gate needs to activate
// group membership or ownership through PIM for Groups.
const (
	ScopeGroupActivate    = "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup"
	ScopeGroupEligibility = "PrivilegedEligibilitySchedule.Read.AzureADGroup"
	ScopeGroupRead        = "GroupMember.Read.All" // only to resolve a group's display name
)

// Permission is one delegated permission mcp-gate needs, what for, and the
// broader permissions Graph accepts in its place.
type Permission struct {
	Name    string
	For     string
	Broader []string
}

// DirectoryRolePermissions are what a token must carry (in scp) for
// directory roles.
var DirectoryRolePermissions = []Permission{
	{ScopeActivate, "create, read and cancel your own activation requests; read your active assignments",
		[]string{"RoleManagement.ReadWrite.Directory"}},
	{ScopeEligibility, "read your eligible assignments",
		[]string{"RoleEligibilitySchedule.ReadWrite.Directory", "RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory"}},
	{ScopeRoles, "resolve role names, read each role's PIM settings",
		[]string{"RoleManagement.ReadWrite.Directory"}},
}

// GroupPermissions are what a token must carry for PIM for Groups, when
// the policy names each group by its object id.
var GroupPermissions = []Permission{
	{ScopeGroupActivate, "create, read and cancel your own group activation requests; read your active memberships and ownerships", nil},
	{ScopeGroupEligibility, "read your eligible group memberships and ownerships",
		[]string{"PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup"}},
}

// GroupNamePermission is what a token must carry, besides
// GroupPermissions, when the policy names a group by its display name.
var GroupNamePermission = Permission{ScopeGroupRead, "resolve group names",
	[]string{"Group.Read.All", "Directory.Read.All", "Group.ReadWrite.All", "Directory.ReadWrite.All", "Directory.AccessAsUser.All"}}

// MissingPermissions lists the permissions of need a token's scopes do
// not cover.
func MissingPermissions(scopes []string, need []Permission) []Permission {
	var out []Permission
	for _, p := range need {
		if !slices.ContainsFunc(scopes, func(s string) bool {
			return strings.EqualFold(s, p.Name) || slices.ContainsFunc(p.Broader, func(b string) bool { return strings.EqualFold(s, b) })
		}) {
			out = append(out, p)
		}
	}
	return out
}

// scopeFor names the permission a Graph request needs, so a 403 can say
// which one the token lacks.
func scopeFor(req *http.Request) string {
	if req == nil || req.URL == nil {
		return ""
	}
	switch p := req.URL.Path; {
	case strings.Contains(p, pathGroupPIM+"/assignmentSchedule"):
		return ScopeGroupActivate
	case strings.Contains(p, pathGroupPIM+"/eligibilitySchedule"):
		return ScopeGroupEligibility
	case strings.Contains(p, "/groups"):
		return ScopeGroupRead
	case strings.Contains(p, "/roleAssignmentSchedule"):
		return ScopeActivate
	case strings.Contains(p, "/roleEligibilitySchedule"):
		return ScopeEligibility
	case strings.Contains(p, "/roleDefinitions"), strings.Contains(p, "/roleManagementPolic"):
		return ScopeRoles
	}
	return ""
}

// permissionsFor is the permission set a request to path belongs to.
func permissionsFor(path string) []Permission {
	switch {
	case strings.Contains(path, pathGroupPIM+"/"):
		return GroupPermissions
	case strings.Contains(path, "/groups"):
		return []Permission{GroupNamePermission}
	}
	return DirectoryRolePermissions
}

// missingPermissions names the permissions of the set path's request
// belongs to that the credential's token lacks, read from its scp claim;
// nil when the token cannot be read.
func (c *Client) missingPermissions(ctx context.Context, path string) []string {
	tok, err := c.cred.GetToken(ctx, graphToken())
	if err != nil {
		return nil
	}
	cl, err := decodeClaims(tok.Token)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range MissingPermissions(strings.Fields(cl.Scp), permissionsFor(path)) {
		out = append(out, p.Name)
	}
	return out
}
