package pimtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Delegated permissions that admit each kind of call, least privileged
// first, as Graph's permission tables for these APIs list them.
var (
	scopesActivate        = []string{"RoleAssignmentSchedule.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"}
	scopesReadAssignments = []string{"RoleAssignmentSchedule.Read.Directory", "RoleAssignmentSchedule.ReadWrite.Directory",
		"RoleManagement.Read.Directory", "RoleManagement.Read.All", "RoleManagement.ReadWrite.Directory"}
	scopesReadEligibility = []string{"RoleEligibilitySchedule.Read.Directory", "RoleEligibilitySchedule.ReadWrite.Directory",
		"RoleManagement.Read.Directory", "RoleManagement.Read.All", "RoleManagement.ReadWrite.Directory"}
	scopesReadPolicies = []string{"RoleManagementPolicy.Read.Directory", "RoleManagement.Read.Directory", "RoleManagement.Read.All",
		"RoleManagementPolicy.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"}
	scopesReadRoles = []string{"RoleManagement.Read.Directory", "Directory.Read.All", "RoleManagement.Read.All",
		"RoleManagement.ReadWrite.Directory", "Directory.ReadWrite.All", "Directory.AccessAsUser.All"}
)

// authorized checks the token's scp against what the call needs and
// answers 403 itself when it falls short: PermissionScopeNotGranted from
// the PIM APIs, Authorization_RequestDenied from the directory's own.
func authorized(ex *exchange, c caller, path string) bool {
	var need []string
	switch post := ex.r.Method == http.MethodPost; {
	case strings.HasPrefix(path, dirPrefix+"roleAssignmentSchedule") && post:
		need = scopesActivate
	case strings.HasPrefix(path, dirPrefix+"roleAssignmentSchedule"):
		need = scopesReadAssignments
	case strings.HasPrefix(path, dirPrefix+"roleEligibilitySchedule"):
		need = scopesReadEligibility
	case strings.HasPrefix(path, policyAssignmentsPath):
		need = scopesReadPolicies
	case strings.HasPrefix(path, dirPrefix+"roleDefinitions"):
		return requireScopes(ex, c, scopesReadRoles, "Authorization_RequestDenied")
	default:
		return true
	}
	return requireScopes(ex, c, need, "PermissionScopeNotGranted")
}

// requireScopes reports whether the token's scp has one of need, else
// answers 403 with code: PermissionScopeNotGranted naming the scopes
// that would do, or the directory's Authorization_RequestDenied.
func requireScopes(ex *exchange, c caller, need []string, code string) bool {
	if hasAny(c.scopes, need) {
		return true
	}
	msg := "Insufficient privileges to complete the operation."
	if code == "PermissionScopeNotGranted" {
		msg = fmt.Sprintf("Authorization failed due to missing permission scope %s.", strings.Join(need, ","))
	}
	ex.fail(&graphError{http.StatusForbidden, code, msg})
	return false
}

func hasAny(have, want []string) bool {
	return slices.ContainsFunc(have, func(s string) bool {
		return slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(s, w) })
	})
}

// checkAuthContext refuses an activation whose token does not show the
// authentication context the role requires; the message carries the
// claims challenge a client must request a new token with.
func checkAuthContext(role *Role, c caller) *graphError {
	if role.AuthContext == "" || slices.Contains(c.acrs, role.AuthContext) {
		return nil
	}
	value, _ := json.Marshal(role.AuthContext) // a string: cannot fail
	return &graphError{http.StatusBadRequest, "RoleAssignmentRequestAcrsValidationFailed",
		fmt.Sprintf(`The role assignment request requires the authentication context %s. Claims challenge: {"access_token":{"acrs":{"essential":true,"value":%s}}}`,
			role.AuthContext, value)}
}
