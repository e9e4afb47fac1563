package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// Azure resource roles through the real binary and the emulator's ARM: a
// tool gated by Contributor on a resource group, for which alice is
// eligible at the subscription, is approved, forwarded and cached; a tool
// gated by a role she is not eligible for is refused with nothing
// requested; a cancelled call cancels its request on ARM.

const (
	armSubscription = "/subscriptions/6f1e7c52-8a3d-4b9e-9c0f-2d4e5a6b7c8d"
	armProdRG       = armSubscription + "/resourceGroups/rg-prod"
	contributorID   = "b24988ac-6180-42a0-ab88-20f7382dd24c"
)

func armGateScenario() pimtest.Scenario {
	sc := gateScenario()
	sc.AzureRoles = []pimtest.AzureRole{
		{ID: contributorID, DisplayName: "Contributor", RequiresApproval: true, MaxDuration: time.Hour},
		{DisplayName: "Owner", RequiresApproval: true},
	}
	sc.AzureEligibilities = []pimtest.AzureEligibility{{Principal: alice, Role: "Contributor", Scope: armSubscription}}
	return sc
}

// armPolicy gates delete_database behind Contributor on rg-prod and
// send_payment behind Owner there, which alice is not eligible for.
func (e *pimEnv) armPolicy(t *testing.T) (policyFile, auditFile string) {
	return e.armPolicyWith(t, e.srv.Token(alice, pimtest.WithARMAudience()))
}

// armPolicyWith is armPolicy with armToken in approvals.armTokenFile.
func (e *pimEnv) armPolicyWith(t *testing.T, armToken string) (policyFile, auditFile string) {
	t.Helper()
	dir := t.TempDir()
	tokenFile, armTokenFile := filepath.Join(dir, "token"), filepath.Join(dir, "arm-token")
	if err := os.WriteFile(tokenFile, []byte(e.srv.Token(alice)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(armTokenFile, []byte(armToken), 0o600); err != nil {
		t.Fatal(err)
	}
	auditFile = filepath.Join(dir, "audit.jsonl")
	policyFile = WritePolicy(t, fmt.Sprintf(`version: 1
approvals:
  credential: token
  tokenFile: %q
  armTokenFile: %q
  graphURL: %s
  armURL: %s
  graphCAFile: %q
  pollInterval: 50ms
  pollMaxBackoff: 200ms
audit:
  path: %q
tools:
  calls: allow
  delete_database: {azureRole: Contributor, scope: %s}
  send_payment: {azureRole: Owner, scope: %s}
  "*": deny
`, tokenFile, armTokenFile, e.srv.URL(), e.srv.ARMURL(), e.caFile, auditFile, armProdRG, armProdRG))
	return policyFile, auditFile
}

func TestAzureRoleGatedCall(t *testing.T) {
	e := startPIMWith(t, armGateScenario())
	policyFile, auditFile := e.armPolicy(t)
	c := demoGate(t, policyFile)
	req := e.gatedThenCached(t, c, func(req pimtest.Request) error {
		if req.RoleDefinitionID != contributorID || !strings.EqualFold(req.Scope, armProdRG) || req.GroupID != "" {
			return fmt.Errorf("pending request %+v, want Contributor at %s", req, armProdRG)
		}
		return nil
	})

	// Owner: not eligible, so refused with nothing requested or forwarded.
	res, err := TryCall(context.Background(), c, "send_payment", map[string]any{"to": "ACME", "amount": 5})
	if err != nil || !res.IsError || !strings.Contains(Text(t, res), "not eligible") || !strings.Contains(Text(t, res), "Azure role 'Owner' at "+armProdRG) {
		t.Fatalf("call needing an Azure role alice is not eligible for: %v %v", err, res)
	}
	if n := e.srv.CreateCount(); n != 1 || len(e.srv.Requests()) != 1 {
		t.Errorf("not eligible, yet %d creates (%+v)", n, e.srv.Requests())
	}
	if got := upstreamRan(t, c, "send_payment"); got != "0" {
		t.Fatalf("a refused call ran %s times", got)
	}

	// The audit log says the kind and the scope.
	_ = c.Close()
	Eventually(t, "the audit log records the Azure role decisions with their scope", func() error {
		recs, err := readAuditRecords(auditFile)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if rec["kind"] == "azureRole" && rec["scope"] == armProdRG && rec["requestId"] == req.ID {
				return nil
			}
		}
		return errors.New("no audit record has kind azureRole, the scope and the request")
	})
}

func TestAzureRoleCancelWithdrawsRequest(t *testing.T) {
	e := startPIMWith(t, armGateScenario())
	policyFile, _ := e.armPolicy(t)
	e.cancelWithdraws(t, policyFile, func(req pimtest.Request) error {
		if req.Scope == "" {
			return fmt.Errorf("pending request %+v is not an Azure role's", req)
		}
		return nil
	})
}

// mcp-gate doctor reads each Azure role's eligibility with the ARM token,
// at the rule's scope or above, and requests nothing.
func TestAzureRoleDoctor(t *testing.T) {
	tests := []struct {
		name  string
		token func(*pimtest.Server) string
		want  [][]string
	}{
		{"ARM token", func(s *pimtest.Server) string { return s.Token(alice, pimtest.WithARMAudience()) }, [][]string{
			{"Azure role 'Contributor' at " + armProdRG, contributorID, "yes", "ok"},
			{"Azure role 'Owner' at " + armProdRG, "no", "BLOCKER: you are not eligible"},
			{"1 blocker(s)"}}},
		{"a Graph token where the ARM one belongs", func(s *pimtest.Server) string { return s.Token(alice) }, [][]string{
			{"Azure role 'Contributor' at " + armProdRG, "BLOCKER: Azure Resource Manager rejected the sign-in token (InvalidAuthenticationTokenAudience)", "approvals.armTokenFile"},
			{"2 blocker(s)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startPIMWith(t, armGateScenario())
			policyFile, _ := e.armPolicyWith(t, tt.token(e.srv))
			linesHold(t, e.doctor(t, policyFile, 1), tt.want)
		})
	}
}
