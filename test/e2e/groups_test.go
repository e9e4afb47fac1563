package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// PIM for Groups through the real binary and the emulator: a tool gated
// by a group membership is approved, forwarded and cached; a tool gated by
// an access the user is not eligible for is refused with nothing
// requested; a cancelled call withdraws its request on the groups API.

const (
	prodDeployers = "Prod Deployers"
	prodGroupID   = "2b5ed229-4072-478d-9504-a047ebd4b07d"
)

func groupsGateScenario() pimtest.Scenario {
	sc := gateScenario()
	sc.Groups = []pimtest.Group{{ID: prodGroupID, DisplayName: prodDeployers, RequiresApproval: true, MaxDuration: time.Hour}}
	sc.Eligibilities = append(sc.Eligibilities, pimtest.Eligibility{Principal: alice, Group: prodDeployers, Access: pimtest.AccessMember})
	return sc
}

// groupPolicy gates delete_database behind membership of Prod Deployers
// (by name) and send_payment behind its ownership (by id), which alice is
// not eligible for.
func (e *pimEnv) groupPolicy(t *testing.T, token string) (policyFile, auditFile string) {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	auditFile = filepath.Join(dir, "audit.jsonl")
	policyFile = WritePolicy(t, fmt.Sprintf(`version: 1
approvals:
  credential: token
  tokenFile: %q
  graphURL: %s
  graphCAFile: %q
  pollInterval: 50ms
  pollMaxBackoff: 200ms
audit:
  path: %q
tools:
  calls: allow
  delete_database: {group: %s}
  send_payment: {group: %s, access: owner}
  "*": deny
`, tokenFile, e.srv.URL(), e.caFile, auditFile, prodDeployers, prodGroupID))
	return policyFile, auditFile
}

// groupRequests are the emulator's requests on the groups API.
func (e *pimEnv) groupRequests() []pimtest.Request {
	var out []pimtest.Request
	for _, r := range e.srv.Requests() {
		if r.GroupID != "" {
			out = append(out, r)
		}
	}
	return out
}

func TestGroupGatedCall(t *testing.T) {
	e := startPIMWith(t, groupsGateScenario())
	policyFile, auditFile := e.groupPolicy(t, e.srv.Token(alice))
	c := demoGate(t, policyFile)
	e.gatedThenCached(t, c, func(req pimtest.Request) error {
		if req.GroupID != prodGroupID || req.AccessID != pimtest.AccessMember || req.RoleDefinitionID != "" {
			return fmt.Errorf("pending request %+v, want one for membership of %s", req, prodGroupID)
		}
		return nil
	}, "PIM group 'Prod Deployers' (member)")

	// Owner access: alice is eligible for membership only, so the call is
	// refused with nothing requested and nothing forwarded.
	res, err := TryCall(context.Background(), c, "send_payment", map[string]any{"to": "ACME", "amount": 5})
	if err != nil || !res.IsError || !strings.Contains(Text(t, res), "not eligible") || !strings.Contains(Text(t, res), "(owner)") {
		t.Fatalf("call needing a group ownership alice is not eligible for: %v %v", err, res)
	}
	if n := e.srv.CreateCount(); n != 1 || len(e.groupRequests()) != 1 {
		t.Errorf("not eligible, yet %d creates (%+v)", n, e.groupRequests())
	}
	if got := upstreamRan(t, c, "send_payment"); got != "0" {
		t.Fatalf("a refused call ran %s times", got)
	}
	if got := upstreamRan(t, c, "delete_database"); got != "2" {
		t.Fatalf("delete_database ran %s times, want 2", got)
	}

	// The audit log says which kind each gated decision was for.
	_ = c.Close()
	Eventually(t, "the audit log records the group decisions", func() error {
		recs, err := readAuditRecords(auditFile)
		if err != nil {
			return err
		}
		groups := 0
		for _, rec := range recs {
			if rec["kind"] == "group" {
				groups++
			}
		}
		if groups == 0 {
			return errors.New("no audit record has kind group")
		}
		return nil
	})
}

func TestGroupCancelWithdrawsRequest(t *testing.T) {
	e := startPIMWith(t, groupsGateScenario())
	policyFile, _ := e.groupPolicy(t, e.srv.Token(alice))
	e.cancelWithdraws(t, policyFile, func(req pimtest.Request) error {
		if req.GroupID != prodGroupID {
			return fmt.Errorf("pending request %+v is not for the group", req)
		}
		return nil
	})
}

// mcp-gate doctor checks each group the policy names, and the PIM for
// Groups permissions, without requesting anything.
func TestGroupDoctor(t *testing.T) {
	tests := []struct {
		name     string
		token    func(*pimtest.Server) string
		wantCode int
		want     [][]string // each: pieces one line of the output holds, in order
	}{
		{"eligible member, not owner", func(s *pimtest.Server) string { return s.Token(alice) }, 1, [][]string{
			{"PIM group 'Prod Deployers' (member)", prodGroupID, "yes", "ok"},
			{"PIM group '" + prodGroupID + "' (owner)", prodGroupID, "no", "BLOCKER: you are not eligible"},
			{"1 blocker(s)"}}},
		{"directory role permissions only", func(s *pimtest.Server) string {
			return s.Token(alice, pimtest.WithScopes("RoleAssignmentSchedule.ReadWrite.Directory", "RoleEligibilitySchedule.Read.Directory", "RoleManagement.Read.Directory"))
		}, 1, [][]string{{"BLOCKER: the token lacks the delegated permission(s) PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup, " +
			"PrivilegedEligibilitySchedule.Read.AzureADGroup, GroupMember.Read.All"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startPIMWith(t, groupsGateScenario())
			policyFile, _ := e.groupPolicy(t, tt.token(e.srv))
			linesHold(t, e.doctor(t, policyFile, tt.wantCode), tt.want)
		})
	}
}

// linesHold checks that for each of want some line of out holds its
// pieces in order.
func linesHold(t *testing.T, out string, want [][]string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(line string) bool { return inOrder(line, w) }) {
			t.Errorf("no line holds %q:\n%s", w, out)
		}
	}
}

// inOrder reports whether s holds every piece, one after another.
func inOrder(s string, pieces []string) bool {
	for _, p := range pieces {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}
