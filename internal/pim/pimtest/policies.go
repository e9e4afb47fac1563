package pimtest

import (
	"net/http"
	"strings"
)

// policyAssignmentsPath lists the role management policies (each role's
// PIM settings) and which role each applies to.
const policyAssignmentsPath = "/policies/roleManagementPolicyAssignments"

// policyAssignmentJSON is a unifiedRoleManagementPolicyAssignment, with
// its policy when $expand asks for it.
type policyAssignmentJSON struct {
	ID               string      `json:"id"`
	PolicyID         string      `json:"policyId"`
	ScopeID          string      `json:"scopeId"`
	ScopeType        string      `json:"scopeType"`
	RoleDefinitionID string      `json:"roleDefinitionId"`
	Policy           *policyJSON `json:"policy,omitempty"`
}

// policyJSON is a unifiedRoleManagementPolicy.
type policyJSON struct {
	ID                    string           `json:"id"`
	DisplayName           string           `json:"displayName"`
	Description           string           `json:"description"`
	IsOrganizationDefault bool             `json:"isOrganizationDefault"`
	ScopeID               string           `json:"scopeId"`
	ScopeType             string           `json:"scopeType"`
	LastModifiedDateTime  *string          `json:"lastModifiedDateTime"`
	Rules                 []map[string]any `json:"rules,omitempty"`
}

// servePolicies answers GET /policies/roleManagementPolicyAssignments for
// directory roles, and reports false for any other path. As Graph does,
// it requires a $filter on scopeId '/' and scopeType Directory or
// DirectoryRole, optionally roleDefinitionId; $expand=policy($expand=rules)
// adds each role's settings as unifiedRoleManagementPolicyRule objects.
func (s *Server) servePolicies(ex *exchange, path string) bool {
	if path != policyAssignmentsPath {
		return false
	}
	if !checkMethod(ex, http.MethodGet) {
		return true
	}
	cs, ok := filterOf(ex, "scopeId", "scopeType", "roleDefinitionId")
	if !ok {
		return true
	}
	var scopeID, scopeType, roleID string
	for _, c := range cs {
		switch c.field {
		case "scopeId":
			scopeID = c.value
		case "scopeType":
			scopeType = c.value
		case "roleDefinitionId":
			roleID = c.value
		}
	}
	if scopeID != "/" || scopeType != "Directory" && scopeType != "DirectoryRole" {
		ex.fail(&graphError{http.StatusBadRequest, "BadRequest",
			"The filter must scope the request: scopeId eq '/' and scopeType eq 'Directory' or 'DirectoryRole' for directory roles."})
		return true
	}
	expand := ex.r.URL.Query().Get("$expand")
	withPolicy, withRules := strings.Contains(expand, "policy"), strings.Contains(expand, "rules")
	var out []policyAssignmentJSON
	for _, role := range s.dir.roles {
		if roleID != "" && !strings.EqualFold(roleID, role.ID) {
			continue
		}
		policyID := scopeType + "_" + s.dir.tenantID + "_" + derivedGUID("policy "+role.ID)
		a := policyAssignmentJSON{ID: policyID + "_" + role.ID, PolicyID: policyID, ScopeID: "/", ScopeType: scopeType, RoleDefinitionID: role.ID}
		if withPolicy {
			a.Policy = &policyJSON{ID: policyID, DisplayName: scopeType, Description: scopeType, ScopeID: "/", ScopeType: scopeType}
			if withRules {
				a.Policy.Rules = role.policyRules()
			}
		}
		out = append(out, a)
	}
	context := "policies/roleManagementPolicyAssignments"
	if withRules {
		context += "(policy(rules()))"
	}
	writePage(ex, ex.metadata(context), out)
	return true
}

// policyRules are the role's activation settings (the EndUser Assignment
// rules, which govern selfActivate) in Graph's shapes.
func (role *Role) policyRules() []map[string]any {
	target := map[string]any{"caller": "EndUser", "operations": []string{"all"}, "level": "Assignment",
		"inheritableSettings": []string{}, "enforcedSettings": []string{}}
	enabled := []string{}
	if role.RequiresMFA {
		enabled = append(enabled, "MultiFactorAuthentication")
	}
	if role.RequiresJustification {
		enabled = append(enabled, "Justification")
	}
	if role.RequiresTicket {
		enabled = append(enabled, "Ticketing")
	}
	var claim any // null when the rule is off, as Graph sends it
	if role.AuthContext != "" {
		claim = role.AuthContext
	}
	return []map[string]any{
		{"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule", "id": "Expiration_EndUser_Assignment",
			"isExpirationRequired": true, "maximumDuration": formatISODuration(role.MaxDuration), "target": target},
		{"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule", "id": "Enablement_EndUser_Assignment",
			"enabledRules": enabled, "target": target},
		{"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule", "id": "Approval_EndUser_Assignment", "target": target,
			"setting": map[string]any{
				"isApprovalRequired": role.RequiresApproval, "isApprovalRequiredForExtension": false,
				"isRequestorJustificationRequired": role.RequiresJustification, "approvalMode": "SingleStage",
				"approvalStages": []map[string]any{{"approvalStageTimeOutInDays": 1, "isApproverJustificationRequired": true,
					"escalationTimeInMinutes": 0, "isEscalationEnabled": false, "primaryApprovers": []any{}, "escalationApprovers": []any{}}},
			}},
		{"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule", "id": "AuthenticationContext_EndUser_Assignment",
			"isEnabled": role.AuthContext != "", "claimValue": claim, "target": target},
	}
}
