package doctor

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim"
)

// fakeClient is a tenant in a few maps.
type fakeClient struct {
	info     pim.TokenInfo
	infoErr  error
	ids      map[string]string // role name -> id
	eligible map[string]bool   // id -> eligible
	settings map[string]pim.RoleSettings
}

func (f *fakeClient) TokenInfo(context.Context) (pim.TokenInfo, error) { return f.info, f.infoErr }
func (f *fakeClient) Principal(context.Context) (string, error)        { return f.info.ObjectID, nil }
func (f *fakeClient) ResolveRole(_ context.Context, role string) (string, error) {
	if id, ok := f.ids[role]; ok {
		return id, nil
	}
	return "", pim.ErrRoleNotFound
}
func (f *fakeClient) Eligible(_ context.Context, _, id string) (bool, error) {
	return f.eligible[id], nil
}
func (f *fakeClient) RoleSettings(_ context.Context, id string) (pim.RoleSettings, error) {
	if s, ok := f.settings[id]; ok {
		return s, nil
	}
	return pim.RoleSettings{}, errors.New("no policy")
}

var allScopes = []string{pim.ScopeActivate, pim.ScopeEligibility, pim.ScopeRoles}

func tenant() *fakeClient {
	return &fakeClient{
		info:     pim.TokenInfo{TenantID: "t", ObjectID: "o", User: "alice@contoso.com", Scopes: allScopes, AMR: []string{"pwd"}},
		ids:      map[string]string{"DBA": "id-dba", "Ops": "id-ops"},
		eligible: map[string]bool{"id-dba": true},
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
		{"all good", nil, []Role{{Name: "DBA"}}, 0,
			[]string{"alice@contoso.com, object id o, tenant t", "id-dba  yes", "MFA, auth context c1, justification, ticket, approval, max 8h",
				"sign in again with MFA", "authentication context c1", "an approver must approve", "ok: every role can be activated"}},
		{"missing scope", func(f *fakeClient) { f.info.Scopes = []string{"User.Read"} }, []Role{{Name: "DBA"}}, 1,
			[]string{"BLOCKER: the token lacks the delegated permission(s) " + strings.Join(allScopes, ", "), "1 blocker(s)"}},
		{"not eligible, unknown role, unsupported kind", nil, []Role{{Name: "Ops"}, {Name: "Nope"}, {Name: "PIM group 'g' (member)", Unsupported: "not built"}}, 3,
			[]string{"id-ops  no", "not eligible", "Nope", "BLOCKER: not built", "3 blocker(s)"}},
		{"no sign-in", func(f *fakeClient) { f.infoErr = pim.ErrAuth }, []Role{{Name: "DBA"}}, 1, []string{"sign-in:  FAIL"}},
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
