package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// Roles whose PIM settings ask more of the sign-in.
const (
	mfaRole = "Security Operator" // MFA on activation
	ctxRole = "Billing Reader"    // authentication context c1
)

// credsEnv is an emulator whose directory has the gate tests' roles plus
// one needing MFA and one needing an authentication context.
func credsEnv(t *testing.T) *pimEnv {
	t.Helper()
	sc := gateScenario()
	sc.Roles = append(sc.Roles,
		pimtest.Role{DisplayName: mfaRole, RequiresMFA: true, MaxDuration: time.Hour},
		pimtest.Role{DisplayName: ctxRole, AuthContext: "c1", MaxDuration: time.Hour})
	sc.Eligibilities = append(sc.Eligibilities, pimtest.Eligibility{Principal: alice, Role: mfaRole}, pimtest.Eligibility{Principal: alice, Role: ctxRole})
	return startPIMWith(t, sc)
}

// credsPolicy gates one tool per role and signs in with token.
func (e *pimEnv) credsPolicy(t *testing.T, token string) string {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return WritePolicy(t, fmt.Sprintf(`version: 1
approvals:
  credential: token
  tokenFile: %q
  graphURL: %s
  graphCAFile: %q
  pollInterval: 50ms
audit:
  path: %q
tools:
  calls: allow
  delete_database: {role: %s}
  send_payment: {role: %s}
  read_table: {role: %s}
  "*": deny
`, tokenFile, e.srv.URL(), e.caFile, filepath.Join(dir, "audit.jsonl"), dbaRole, mfaRole, ctxRole))
}

// A token the gate cannot activate with gets a refusal that names what is
// missing and what to do, and nothing reaches the upstream.
func TestCredentialRefusals(t *testing.T) {
	tests := []struct {
		name  string
		token func(*pimtest.Server) string
		tool  string
		want  []string
	}{
		{"no PIM scopes", func(s *pimtest.Server) string {
			return s.Token(alice, pimtest.WithScopes("User.Read", "Directory.AccessAsUser.All"))
		},
			"delete_database", []string{"RoleAssignmentSchedule.ReadWrite.Directory", "approvals.clientId", "admin consent", "mcp-gate login"}},
		{"MFA role without MFA", func(s *pimtest.Server) string { return s.Token(alice) },
			"send_payment", []string{"multi-factor authentication", "credential: browser or devicecode"}},
		{"authentication context", func(s *pimtest.Server) string { return s.Token(alice, pimtest.WithMFA()) },
			"read_table", []string{`authentication context "c1"`, "credential: browser or devicecode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := credsEnv(t)
			c := demoGate(t, e.credsPolicy(t, tt.token(e.srv)))
			res := Call(t, c, tt.tool, map[string]any{"name": "prod"})
			text := Text(t, res)
			if !res.IsError {
				t.Fatalf("answer %q is not a refusal", text)
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("refusal %q lacks %q", text, w)
				}
			}
			if got := upstreamRan(t, c, tt.tool); got != "0" {
				t.Fatalf("refused call reached the upstream %s times", got)
			}
			if n := e.srv.CreateCount(); n != 0 {
				t.Fatalf("%d PIM requests created", n)
			}
		})
	}
}

// mcp-gate doctor checks the sign-in and every role without activating
// anything, and exits 1 on a blocker.
func TestDoctor(t *testing.T) {
	tests := []struct {
		name     string
		token    func(*pimtest.Server) string
		wantCode int
		want     []string
	}{
		{"all good", func(s *pimtest.Server) string { return s.Token(alice) }, 0,
			[]string{"ok: every role and group can be activated", dbaRole, "approval", mfaRole, "you will be asked to sign in again with MFA", "auth context c1"}},
		{"missing scope", func(s *pimtest.Server) string {
			return s.Token(alice, pimtest.WithScopes("RoleManagement.Read.Directory"))
		}, 1,
			[]string{"BLOCKER", "RoleAssignmentSchedule.ReadWrite.Directory"}},
		{"not eligible", func(s *pimtest.Server) string { return s.Token(carol) }, 1,
			[]string{"BLOCKER: you are not eligible", dbaRole}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := credsEnv(t)
			out := e.doctor(t, e.credsPolicy(t, tt.token(e.srv)), tt.wantCode)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// doctor runs mcp-gate doctor on policyFile, checks its exit status and
// that it requested nothing at PIM (doctor only reads), and returns its
// output.
func (e *pimEnv) doctor(t *testing.T, policyFile string, wantCode int) string {
	t.Helper()
	out, err := exec.Command(GateBin, "doctor", "--policy", policyFile).Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != wantCode {
		t.Errorf("doctor exit %d, want %d", code, wantCode)
	}
	if n := e.srv.CreateCount(); n != 0 {
		t.Errorf("doctor created %d PIM requests", n)
	}
	return string(out)
}
