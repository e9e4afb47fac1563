package doctor

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
)

// fakeClient is a tenant in a few maps.
type fakeClient struct {
	info     pim.TokenInfo
	infoErr  error
	ids      map[string]string // role or group name -> id
	eligible map[string]bool   // id (and "/access" for a group) -> eligible
	settings map[string]pim.RoleSettings
}

func (f *fakeClient) TokenInfo(context.Context) (pim.TokenInfo, error) { return f.info, f.infoErr }
func (f *fakeClient) Principal(context.Context) (string, error)        { return f.info.ObjectID, nil }
func (f *fakeClient) Resolve(_ context.Context, t policy.Target) (string, error) {
	if id, ok := f.ids[t.Role]; ok {
		return id, nil
	}
	if pim.IsGUID(t.Role) {
		return t.Role, nil
	}
	return "", pim.ErrRoleNotFound
}
func (f *fakeClient) EligibleFor(_ context.Context, _ string, t policy.Target) (bool, error) {
	if t.Kind == policy.KindGroup {
		return f.eligible[t.Role+"/"+string(t.Access)], nil
	}
	return f.eligible[t.Role], nil
}
func (f *fakeClient) RoleSettings(_ context.Context, id string) (pim.RoleSettings, error) {
	if s, ok := f.settings[id]; ok {
		return s, nil
	}
	return pim.RoleSettings{}, errors.New("no policy")
}

var (
	allScopes   = []string{pim.ScopeActivate, pim.ScopeEligibility, pim.ScopeRoles}
	groupScopes = []string{pim.ScopeGroupActivate, pim.ScopeGroupEligibility}
	prodGroupID = "2b5ed229-4072-478d-9504-a047ebd4b07d"
)

func role(name string) Role { return Role{Target: policy.Target{Role: name}} }
func azure(name string) Role {
	return Role{Target: policy.Target{Kind: policy.KindAzureRole, Role: name, Scope: "/subscriptions/s"}}
}
func group(name string, access policy.Access) Role {
	return Role{Target: policy.Target{Kind: policy.KindGroup, Role: name, Access: access}}
}

func tenant() *fakeClient {
	return &fakeClient{
		info: pim.TokenInfo{TenantID: "t", ObjectID: "o", User: "alice@contoso.com", AMR: []string{"pwd"},
			Scopes: append(append(append([]string{}, allScopes...), groupScopes...), pim.ScopeGroupRead)},
		ids:      map[string]string{"DBA": "id-dba", "Ops": "id-ops", "Prod": prodGroupID, "Reader": "id-reader", "Contributor": "id-contributor"},
		eligible: map[string]bool{"id-dba": true, prodGroupID + "/member": true, "id-contributor": true},
		settings: map[string]pim.RoleSettings{"id-dba": {MFA: true, AuthContext: "c1", Justification: true, Ticket: true, Approval: true, MaxDuration: 8 * time.Hour}},
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*fakeClient)
		roles    []Role
		blockers int
		want     []string
	}{
		{"all good", nil, []Role{role("DBA")}, 0,
			[]string{"alice@contoso.com, object id o, tenant t", "id-dba  yes", "MFA, auth context c1, justification, ticket, approval, max 8h",
				"sign in again with MFA", "authentication context c1", "an approver must approve", "ok: every role and group can be activated"}},
		{"missing scope", func(f *fakeClient) { f.info.Scopes = []string{"User.Read"} }, []Role{role("DBA")}, 1,
			[]string{"BLOCKER: the token lacks the delegated permission(s) " + strings.Join(allScopes, ", "), "1 blocker(s)"}},
		{"not eligible, unknown role, Azure role not eligible", nil, []Role{role("Ops"), role("Nope"), azure("Reader")}, 3,
			[]string{"id-ops     no", "not eligible", "Nope", "Azure role 'Reader' at /subscriptions/s  id-reader  no", "3 blocker(s)"}},
		{"Azure role eligible, with no Graph permission", func(f *fakeClient) { f.info.Scopes = nil }, []Role{azure("Contributor")}, 0,
			[]string{"Azure role 'Contributor' at /subscriptions/s  id-contributor  yes", "not checked for Azure roles  ok", "ok: every role and group can be activated"}},
		{"no sign-in", func(f *fakeClient) { f.infoErr = pim.ErrAuth }, []Role{role("DBA")}, 1, []string{"sign-in:  FAIL"}},
		{"group eligible by name", nil, []Role{group("Prod", policy.AccessMember)}, 0,
			[]string{"PIM group 'Prod' (member)  " + prodGroupID + "  yes       not checked for groups  ok", "ok: every role and group can be activated"}},
		{"group owner not eligible", nil, []Role{group(prodGroupID, policy.AccessOwner)}, 1,
			[]string{"PIM group '" + prodGroupID + "' (owner)  " + prodGroupID + "  no", "not eligible"}},
		{"groups need the PIM for Groups permissions, not the directory ones", func(f *fakeClient) { f.info.Scopes = allScopes }, []Role{group("Prod", policy.AccessMember)}, 1,
			[]string{"lacks the delegated permission(s) " + strings.Join(append(groupScopes, pim.ScopeGroupRead), ", ") + " (it has"}},
		{"a group named by id needs no group read permission", func(f *fakeClient) { f.info.Scopes = groupScopes }, []Role{group(prodGroupID, policy.AccessMember)}, 0,
			[]string{"scopes:   ok", "ok: every role and group can be activated"}},
		{"roles and groups need both sets", func(f *fakeClient) { f.info.Scopes = groupScopes }, []Role{role("DBA"), group(prodGroupID, policy.AccessMember)}, 1,
			[]string{"lacks the delegated permission(s) " + strings.Join(allScopes, ", ") + " (it has"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tenant()
			if tt.mod != nil {
				tt.mod(c)
			}
			var out bytes.Buffer
			if got := Run(context.Background(), &out, c, tt.roles); got != tt.blockers {
				t.Errorf("blockers = %d, want %d", got, tt.blockers)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
