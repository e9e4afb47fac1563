package policy

import (
	"strings"
	"testing"
)

// The credential must be able to activate what the rules name: the Azure
// CLI's Graph token cannot activate Entra roles or groups, and the
// interactive credentials need the organisation's app registration.
func TestCredentialFitsTargets(t *testing.T) {
	const tenant = "tenantId: 00000000-1111-2222-3333-444444444444"
	tests := []struct {
		name, approvals, rule string
		wantErr, wantWarn     string
	}{
		{"azurecli with a role", "{" + tenant + ", credential: azurecli}", "{role: DBA}", "", "azurecli cannot activate Entra roles or PIM groups"},
		{"default with a group", "{" + tenant + "}", "{group: 9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3, access: member}", "", "default ends in the Azure CLI"},
		{"azurecli with an Azure role only", "{" + tenant + ", credential: azurecli}", "{azureRole: Reader, scope: /subscriptions/00000000-1111-2222-3333-444444444444}", "", ""},
		{"browser without clientId", "{" + tenant + ", credential: browser}", "{role: DBA}", "needs approvals.clientId", ""},
		{"devicecode without clientId", "{" + tenant + ", credential: devicecode}", "{role: DBA}", "AADSTS65002", ""},
		{"browser with clientId", "{" + tenant + ", credential: browser, clientId: 3b1a7c52-9d4e-4f60-8a1b-2c3d4e5f6a7b}", "{role: DBA}", "", ""},
		{"clientId not a GUID", "{" + tenant + ", credential: browser, clientId: mcp-gate}", "{role: DBA}", "approvals.clientId: \"mcp-gate\" is not a GUID", ""},
		{"azurecli, no rule names a role", "{" + tenant + ", credential: azurecli}", "allow", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "version: 1\napprovals: " + tt.approvals + "\ntools:\n  a: " + tt.rule + "\n"
			_, problems, err := Parse("p.yaml", []byte(src))
			var errs, warns []string
			for _, p := range problems {
				if p.Severity == SeverityWarning {
					warns = append(warns, p.Message)
				} else {
					errs = append(errs, p.Message)
				}
			}
			check := func(kind string, got []string, want string) {
				switch {
				case want == "" && len(got) > 0:
					t.Errorf("unexpected %s: %q", kind, got)
				case want != "" && (len(got) != 1 || !strings.Contains(got[0], want)):
					t.Errorf("%s = %q, want one containing %q", kind, got, want)
				}
			}
			check("errors", errs, tt.wantErr)
			check("warnings", warns, tt.wantWarn)
			if (err != nil) != (tt.wantErr != "") {
				t.Errorf("err = %v", err)
			}
		})
	}
}
