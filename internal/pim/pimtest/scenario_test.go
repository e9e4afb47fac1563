package pimtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadScenario(t *testing.T) {
	sc, err := LoadScenario("../../../cmd/pim-emulator/testdata/demo-scenario.yaml")
	if err != nil {
		t.Fatalf("demo scenario: %v", err)
	}
	if len(sc.Users) != 2 || len(sc.Roles) != 3 || len(sc.Groups) != 1 || len(sc.Eligibilities) != 5 || len(sc.Active) != 1 {
		t.Fatalf("demo scenario read as %+v", sc)
	}
	treasury := sc.Roles[2]
	if treasury.DisplayName != "Treasury" || treasury.MaxDuration != 15*time.Minute || !treasury.RequiresMFA ||
		treasury.Approver == nil || *treasury.Approver != (Approver{Mode: ApproveAuto, After: 30 * time.Second}) {
		t.Errorf("Treasury read as %+v", treasury)
	}
	if g := sc.Groups[0]; g.DisplayName != "Prod Deployers" || !g.RequiresApproval || g.MaxDuration != time.Hour {
		t.Errorf("group read as %+v", g)
	}
	if e := sc.Eligibilities[1]; e.Group != "Prod Deployers" || e.Access != AccessMember || e.Role != "" {
		t.Errorf("group eligibility read as %+v", e)
	}
	if sc.Active[0].Duration != 2*time.Hour {
		t.Errorf("active duration %v", sc.Active[0].Duration)
	}

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("full.yaml", `
users: [{id: `+alice+`, name: alice}]
roles: [{displayName: X, maxDuration: 90m}]
eligibilities: [{principal: `+alice+`, role: X}]
active: [{principal: `+alice+`, role: X, end: 2026-03-04T12:00:00Z}]
faults: {throttleEvery: 5, retryAfter: "0.5", errorRate: 0.1, errorStatus: 504, seed: 9, latency: 10ms, dropEvery: 7}
pageSize: 3
`)
	sc, err = LoadScenario(full)
	if err != nil {
		t.Fatal(err)
	}
	want := Faults{ThrottleEvery: 5, RetryAfter: "0.5", ErrorRate: 0.1, ErrorStatus: 504, Seed: 9, Latency: 10 * time.Millisecond, DropEvery: 7}
	if sc.Faults != want || sc.PageSize != 3 || sc.Roles[0].MaxDuration != 90*time.Minute || !sc.Active[0].End.Equal(epoch.Add(2*time.Hour)) {
		t.Errorf("read as %+v", sc)
	}

	for name, body := range map[string]string{
		"unknown key": "users: []\nrolez: []\n",
		"not YAML":    "users: [\n",
		"invalid":     "users: [{id: nope}]\n",
	} {
		if _, err := LoadScenario(write(name+".yaml", body)); err == nil {
			t.Errorf("%s: LoadScenario accepted it", name)
		}
	}
	if _, err := LoadScenario(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestScenarioValidation(t *testing.T) {
	role := func(r Role) Scenario {
		sc := testScenario()
		sc.Roles = append(sc.Roles, r)
		return sc
	}
	tests := map[string]struct {
		sc   Scenario
		want string
	}{
		"user id not a GUID":      {Scenario{Users: []User{{ID: "alice"}}}, "not a GUID"},
		"duplicate user":          {Scenario{Users: []User{{ID: alice}, {ID: strings.ToUpper(alice)}}}, "duplicate id"},
		"tenant not a GUID":       {Scenario{TenantID: "contoso"}, "tenantId"},
		"negative page size":      {Scenario{PageSize: -1}, "pageSize"},
		"role without a name":     {role(Role{ID: readerID}), "displayName is empty"},
		"role id not a GUID":      {role(Role{ID: "x", DisplayName: "X"}), "not a GUID"},
		"duplicate role id":       {role(Role{ID: readerID, DisplayName: "Other"}), "duplicate id"},
		"duplicate role name":     {role(Role{DisplayName: "reader"}), "duplicate displayName"},
		"negative max duration":   {role(Role{DisplayName: "X", MaxDuration: -time.Minute}), "maxDuration"},
		"bad role approver":       {role(Role{DisplayName: "X", Approver: &Approver{Mode: "maybe"}}), "mode"},
		"bad approver":            {Scenario{Approver: Approver{Mode: ApproveAuto, After: -1}}, "after"},
		"eligible stranger":       {Scenario{Eligibilities: []Eligibility{{Principal: alice, Role: "X"}}}, "not a user"},
		"eligible for no role":    {Scenario{Users: []User{{ID: alice}}, Eligibilities: []Eligibility{{Principal: alice, Role: "X"}}}, "not a role"},
		"negative active":         {Scenario{Users: []User{{ID: alice}}, Roles: []Role{{DisplayName: "X"}}, Active: []Assignment{{Principal: alice, Role: "X", Duration: -1}}}, "negative"},
		"error rate above one":    {Scenario{Faults: Faults{ErrorRate: 2}}, "errorRate"},
		"error status not 5xx":    {Scenario{Faults: Faults{ErrorStatus: 404}}, "errorStatus"},
		"assignment read status":  {Scenario{Faults: Faults{AssignmentReadStatus: 404}}, "assignmentReadStatus"},
		"retry-after not seconds": {Scenario{Faults: Faults{RetryAfter: "soon"}}, "retryAfter"},
		"negative every":          {Scenario{Faults: Faults{ThrottleEvery: -1}}, "throttleEvery"},
		"negative latency":        {Scenario{Faults: Faults{Latency: -1}}, "latency"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewServer(tc.sc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewServer error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	_, err := NewServer(Scenario{Users: []User{{ID: "a"}}, PageSize: -1, Faults: Faults{ErrorRate: 3}})
	for _, want := range []string{"not a GUID", "pageSize", "errorRate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("combined error %v lacks %q", err, want)
		}
	}
}

func TestDerivedRoleIDIsStableGUID(t *testing.T) {
	a, b := derivedGUID("Treasury"), derivedGUID("Treasury")
	if a != b || !isGUID(a) || a == derivedGUID("treasury ") || a[14] != '5' {
		t.Fatalf("derivedGUID: %q, %q", a, b)
	}
}
