package pim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

const (
	subID         = "dfa2a084-766f-4003-8ae1-c4aeb893a99f"
	sub           = "/subscriptions/" + subID
	rgProd        = sub + "/resourceGroups/rg-prod"
	contributorID = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	readerID      = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	authz         = "/providers/Microsoft.Authorization"
)

// armCred hands out a token per audience, so the fake can tell which one
// a request carries.
type armCred struct{}

func (armCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if slices.Contains(o.Scopes, pim.ARMScope) {
		return azcore.AccessToken{Token: "arm-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
	}
	return azcore.AccessToken{Token: "graph-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// eligibility is a roleEligibilityScheduleInstance as the 2020-10-01
// examples show it (GetRoleEligibilityScheduleInstancesByScope.json), for
// role at scope.
func eligibility(principal, scope, role string) string {
	return fmt.Sprintf(`{"properties":{"scope":%q,"roleDefinitionId":"%s%s/roleDefinitions/%s","principalId":%q,"principalType":"User","status":"Provisioned",
		"roleEligibilityScheduleId":"%s%s/RoleEligibilitySchedules/b1477448-2cc6-4ceb-93b4-54a202a89413","startDateTime":"2026-01-10T00:32:36.86Z","endDateTime":"2027-01-10T00:31:41.477Z",
		"memberType":"Direct","createdOn":"2026-01-10T00:32:36.86Z","condition":null,"conditionVersion":null,
		"expandedProperties":{"scope":{"id":%q,"displayName":"Pay-As-You-Go","type":"subscription"},"roleDefinition":{"id":"%s%s/roleDefinitions/%s","displayName":"Contributor","type":"BuiltInRole"},
		"principal":{"id":%q,"displayName":"User Account","email":"user@my-tenant.com","type":"User"}}},
		"name":"21e4b59a-0499-4fe0-a3c3-43a3055b773a","id":"%s%s/RoleEligibilityScheduleInstances/21e4b59a-0499-4fe0-a3c3-43a3055b773a","type":"Microsoft.Authorization/RoleEligibilityScheduleInstances"}`,
		scope, sub, authz, role, principal, scope, authz, scope, sub, authz, role, principal, scope, authz)
}

// fakeARM answers the ARM PIM endpoints at rgProd with the bodies of the
// 2020-10-01 examples in azure-rest-api-specs. Its first eligibility read
// is throttled with a fractional Retry-After, eligibilities come in two
// pages, and the first PUT fails with a 503.
type fakeARM struct {
	t         *testing.T
	mu        sync.Mutex
	elig      []string // eligibility instances, the last one on page 2
	status    []string // what successive GETs of the request answer
	putErr    []string // error bodies for the first PUTs, as "status body"
	puts      []string // names PUT
	putBody   map[string]any
	seen      []string
	active    bool
	throttled bool
	polls     int
}

func (f *fakeARM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-request-id", "f00d")
	if got := r.Header.Get("Authorization"); got != "Bearer arm-token" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"code":"InvalidAuthenticationTokenAudience","message":"The access token has been obtained for wrong audience or resource (%s)."}}`, got)
		return
	}
	q := r.URL.Query()
	base := "http://" + r.Host
	p := strings.TrimPrefix(r.URL.Path, rgProd+authz+"/")
	reqName := ""
	if len(f.puts) > 0 {
		reqName = f.puts[0]
	}
	switch {
	case p == "roleDefinitions" && q.Get("api-version") == "2022-04-01":
		if got := q.Get("$filter"); got != "roleName eq 'Contributor'" {
			f.t.Errorf("roleDefinitions $filter = %q", got)
		}
		fmt.Fprintf(w, `{"value":[{"properties":{"roleName":"Contributor","type":"BuiltInRole","description":"Grants full access to manage all resources.","assignableScopes":["/"],
			"permissions":[{"actions":["*"],"notActions":[],"dataActions":[],"notDataActions":[]}],"createdOn":"2015-02-02T21:55:09.8806423Z","updatedOn":"2024-01-01T00:00:00Z","createdBy":null,"updatedBy":null},
			"id":"%s%s/roleDefinitions/%s","type":"Microsoft.Authorization/roleDefinitions","name":%q}]}`, sub, authz, contributorID, contributorID)
	case p == "roleEligibilityScheduleInstances" && !f.throttled:
		f.throttled = true
		w.Header().Set("Retry-After", "0.5")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"code":"TooManyRequests","message":"The request is being throttled."}}`)
	case p == "roleEligibilityScheduleInstances":
		if q.Get("$filter") != "asTarget()" || q.Get("api-version") != "2020-10-01" {
			f.t.Errorf("eligibility query %q", r.URL.RawQuery)
		}
		if q.Get("$skipToken") == "" && len(f.elig) > 1 {
			fmt.Fprintf(w, `{"value":[%s],"nextLink":"%s%s?$filter=asTarget()&api-version=2020-10-01&$skipToken=p2"}`, strings.Join(f.elig[:len(f.elig)-1], ","), base, r.URL.Path)
			return
		}
		fmt.Fprintf(w, `{"value":[%s]}`, f.elig[len(f.elig)-1])
	case p == "roleAssignmentScheduleInstances":
		if !f.active {
			io.WriteString(w, `{"value":[]}`)
			return
		}
		fmt.Fprintf(w, `{"value":[{"properties":{"originRoleAssignmentId":"%s%s/roleAssignments/ed9b8180-cef7-4c77-a63c-b8566ecfc412","linkedRoleEligibilityScheduleId":"b1477448-2cc6-4ceb-93b4-54a202a89413",
			"assignmentType":"Activated","scope":%q,"roleDefinitionId":"%s%s/roleDefinitions/%s","principalId":%q,"principalType":"User","status":"Provisioned",
			"roleAssignmentScheduleId":"%s%s/RoleAssignmentSchedules/c9e264ff-3133-4776-a81a-ebc7c33c8ec6","startDateTime":"2026-03-02T09:00:00Z","endDateTime":"2026-03-02T10:00:00Z","memberType":"Direct","createdOn":"2026-03-02T09:00:00Z"},
			"name":"ed9b8180-cef7-4c77-a63c-b8566ecfc412","id":"%s%s/RoleAssignmentScheduleInstances/ed9b8180","type":"Microsoft.Authorization/RoleAssignmentScheduleInstances"}]}`,
			rgProd, authz, rgProd, sub, authz, contributorID, alice, rgProd, authz, rgProd, authz)
	case strings.HasPrefix(p, "roleAssignmentScheduleRequests/") && r.Method == http.MethodPut:
		name := strings.TrimPrefix(p, "roleAssignmentScheduleRequests/")
		f.puts = append(f.puts, name)
		if err := json.NewDecoder(r.Body).Decode(&f.putBody); err != nil {
			f.t.Error(err)
		}
		if len(f.putErr) >= len(f.puts) {
			status, body, _ := strings.Cut(f.putErr[len(f.puts)-1], " ")
			var code int
			fmt.Sscan(status, &code)
			w.WriteHeader(code)
			io.WriteString(w, body)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, f.request(name, "PendingApproval"))
	case p == "roleAssignmentScheduleRequests/"+reqName && r.Method == http.MethodGet:
		st := f.status[min(f.polls, len(f.status)-1)]
		f.polls++
		if st == "Provisioned" {
			f.active = true
		}
		io.WriteString(w, f.request(reqName, st))
	case p == "roleAssignmentScheduleRequests/"+reqName+"/cancel" && r.Method == http.MethodPost:
		w.WriteHeader(http.StatusOK)
	default:
		f.t.Errorf("unexpected %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"InvalidResourceType","message":"The resource type could not be found."}}`)
	}
}

// request is a roleAssignmentScheduleRequest as PutRoleAssignmentScheduleRequest.json answers it.
func (f *fakeARM) request(name, status string) string {
	return fmt.Sprintf(`{"properties":{"targetRoleAssignmentScheduleId":"c9e264ff-3133-4776-a81a-ebc7c33c8ec6","targetRoleAssignmentScheduleInstanceId":null,"scope":%q,
		"roleDefinitionId":"%s%s/roleDefinitions/%s","principalId":%q,"principalType":"User","requestType":"SelfActivate","status":%q,"approvalId":null,
		"scheduleInfo":{"startDateTime":"2026-03-02T09:00:00Z","expiration":{"type":"AfterDuration","endDateTime":null,"duration":"PT1H"}},
		"ticketInfo":{"ticketNumber":null,"ticketSystem":null},"justification":"test","requestorId":%q,"createdOn":"2026-03-02T09:00:00.91Z","condition":null,"conditionVersion":null,
		"expandedProperties":{"scope":{"id":%q,"displayName":"rg-prod","type":"resourcegroup"},"roleDefinition":{"id":"%s%s/roleDefinitions/%s","displayName":"Contributor","type":"BuiltInRole"},
		"principal":{"id":%q,"displayName":"User Account","email":"user@my-tenant.com","type":"User"}}},
		"name":%q,"id":"%s%s/RoleAssignmentScheduleRequests/%s","type":"Microsoft.Authorization/RoleAssignmentScheduleRequests"}`,
		rgProd, sub, authz, contributorID, alice, status, alice, rgProd, sub, authz, contributorID, alice, name, rgProd, authz, name)
}

func armClient(t *testing.T, f *fakeARM) (*env, *pim.Client) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	e := &env{clk: &recClock{Fake: clock.NewFake(t0)}}
	c, err := pim.New(pim.Config{GraphURL: "https://graph.invalid/v1.0", ARMURL: srv.URL, Credential: armCred{}, PollInterval: time.Second, PollMaxBackoff: 8 * time.Second,
		Clock: e.clk, Jitter: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

var azureTarget = mgpolicy.Target{Kind: mgpolicy.KindAzureRole, Role: "Contributor", Scope: rgProd}

func azureReq() pim.Request {
	return pim.Request{Principal: alice, Target: azureTarget, Duration: time.Hour, Justification: "test", TicketNumber: "CHG-1"}
}

// An eligibility at the subscription admits an activation at a resource
// group under it; the PUT that failed is sent again under the same name.
func TestAzureRoleActivation(t *testing.T) {
	f := &fakeARM{t: t, status: []string{"PendingApproval", "AdminApproved", "Provisioned"},
		elig:   []string{eligibility(alice, sub, readerID), eligibility(alice, sub, contributorID)},
		putErr: []string{`503 {"error":{"code":"ServiceUnavailable","message":"The server is currently unavailable."}}`}}
	e, c := armClient(t, f)
	var statuses []string
	gr, err := e.activate(c, context.Background(), azureReq(), func(s pim.Status) { statuses = append(statuses, s.Status) })
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	if len(f.puts) != 2 || f.puts[0] != f.puts[1] || !pim.IsGUID(f.puts[0]) {
		t.Fatalf("PUT names %v, want one GUID sent twice", f.puts)
	}
	if gr.RequestID != f.puts[0] || gr.RoleDefinitionID != contributorID || !gr.End.Equal(t0.Add(time.Hour)) {
		t.Fatalf("grant = %+v", gr)
	}
	if strings.Join(statuses, ",") != "PendingApproval,PendingApproval,AdminApproved,Provisioned" {
		t.Errorf("statuses = %v", statuses)
	}
	props, _ := f.putBody["properties"].(map[string]any)
	want := map[string]any{"principalId": alice, "requestType": "SelfActivate", "justification": "test",
		"roleDefinitionId":                sub + authz + "/roleDefinitions/" + contributorID,
		"linkedRoleEligibilityScheduleId": sub + authz + "/RoleEligibilitySchedules/b1477448-2cc6-4ceb-93b4-54a202a89413"}
	for k, v := range want {
		if props[k] != v {
			t.Errorf("PUT properties.%s = %v, want %v", k, props[k], v)
		}
	}
	if exp, _ := props["scheduleInfo"].(map[string]any)["expiration"].(map[string]any); exp["type"] != "AfterDuration" || exp["duration"] != "PT1H" {
		t.Errorf("PUT scheduleInfo = %v", props["scheduleInfo"])
	}
	if ti, _ := props["ticketInfo"].(map[string]any); ti["ticketNumber"] != "CHG-1" {
		t.Errorf("PUT ticketInfo = %v", props["ticketInfo"])
	}
	if !f.throttled || !slices.Contains(e.clk.Waits(), 500*time.Millisecond) {
		t.Errorf("the 429's Retry-After 0.5 was not waited: waits %v", e.clk.Waits())
	}
	f.mu.Unlock()
	// The grant is re-read at the rule's scope, and only for this role.
	if _, live, err := c.Active(context.Background(), alice, mgpolicy.Target{Kind: mgpolicy.KindAzureRole, Role: readerID, Scope: rgProd}); err != nil || live {
		t.Errorf("Reader read as live from a Contributor assignment: %v, %v", live, err)
	}
}

func TestAzureRoleEligibilityScope(t *testing.T) {
	tests := []struct {
		name string
		elig string
		ok   bool
	}{
		{"at the resource group", eligibility(alice, rgProd, contributorID), true},
		{"at the subscription, another case", eligibility(alice, strings.ToUpper(sub), contributorID), true},
		{"at a resource group whose name is a prefix", eligibility(alice, sub+"/resourceGroups/rg", contributorID), false},
		{"at another subscription", eligibility(alice, "/subscriptions/11111111-2222-3333-4444-555555555555", contributorID), false},
		{"at a resource under the group", eligibility(alice, rgProd+"/providers/Microsoft.Compute/virtualMachines/vm1", contributorID), false},
		{"another role", eligibility(alice, sub, readerID), false},
		{"someone else's", eligibility(bob, sub, contributorID), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeARM{t: t, status: []string{"Provisioned"}, elig: []string{tt.elig}, throttled: true}
			e, c := armClient(t, f)
			_, err := e.activate(c, context.Background(), azureReq(), nil)
			f.mu.Lock()
			defer f.mu.Unlock()
			if tt.ok && err != nil {
				t.Fatalf("err = %v", err)
			}
			if !tt.ok && (!errors.Is(err, pim.ErrNotEligible) || len(f.puts) != 0) {
				t.Fatalf("err = %v, PUTs %v; want not eligible and no request", err, f.puts)
			}
		})
	}
}

func TestAzureRoleStatusesAndErrors(t *testing.T) {
	tests := []struct {
		name   string
		status []string
		putErr []string
		want   string // in UserMessage
	}{
		{"denied by the admin", []string{"PendingApproval", "AdminDenied"}, nil, "approver denied the activation of role Contributor at " + rgProd},
		{"resource locked", []string{"FailedAsResourceIsLocked"}, nil, "ended FailedAsResourceIsLocked"},
		{"timed out", []string{"TimedOut"}, nil, "nobody approved role Contributor at " + rgProd},
		{"policy rule", nil, []string{`400 {"error":{"code":"RoleAssignmentRequestPolicyValidationFailed","message":"The following policy rules failed: [\"JustificationRule\"]."}}`}, "requires a justification"},
		{"wrong audience", nil, []string{`401 {"error":{"code":"InvalidAuthenticationTokenAudience","message":"The access token has been obtained for wrong audience."}}`}, "approvals.armTokenFile"},
		{"throttled throughout", nil, []string{
			`429 {"error":{"code":"TooManyRequests","message":"throttled"}}`, `429 {"error":{"code":"TooManyRequests","message":"throttled"}}`,
			`429 {"error":{"code":"TooManyRequests","message":"throttled"}}`}, "Azure Resource Manager is throttling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeARM{t: t, status: tt.status, putErr: tt.putErr, elig: []string{eligibility(alice, sub, contributorID)}, throttled: true}
			e, c := armClient(t, f)
			_, err := e.activate(c, context.Background(), azureReq(), nil)
			if msg := pim.UserMessage(err); err == nil || !strings.Contains(msg, tt.want) {
				t.Fatalf("err = %v\nmessage %q, want it to say %q", err, msg, tt.want)
			}
		})
	}
}

func TestAzureRoleCancelledOnARM(t *testing.T) {
	f := &fakeARM{t: t, status: []string{"PendingApproval"}, elig: []string{eligibility(alice, sub, contributorID)}, throttled: true}
	e, c := armClient(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := e.activate(c, ctx, azureReq(), func(s pim.Status) {
		if s.Status == "PendingApproval" {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("a cancelled activation succeeded")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if last := f.seen[len(f.seen)-1]; last != "POST "+rgProd+authz+"/roleAssignmentScheduleRequests/"+f.puts[0]+"/cancel" {
		t.Fatalf("last request %q, want ARM's cancel of the request", last)
	}
}

func TestAzureRoleByID(t *testing.T) {
	for _, role := range []string{contributorID, strings.ToUpper(contributorID), sub + authz + "/roleDefinitions/" + contributorID} {
		f := &fakeARM{t: t}
		_, c := armClient(t, f)
		id, err := c.Resolve(context.Background(), mgpolicy.Target{Kind: mgpolicy.KindAzureRole, Role: role, Scope: rgProd})
		if err != nil || id != contributorID || len(f.seen) != 0 {
			t.Errorf("Resolve(%s) = %q, %v after %v; want the GUID without a request", role, id, err, f.seen)
		}
	}
}
