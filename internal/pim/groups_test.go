package pim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

const (
	prodGroupID = "2b5a1f0e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
	groupReqID  = "34e963f6-150f-cf79-678c-6fcaf978bb49"
)

// groupGraph answers the PIM for Groups endpoints with the shapes Graph
// v1.0 documents for privilegedAccessGroupAssignmentScheduleRequest and
// privilegedAccessGroupEligibilityScheduleInstance. Its first eligibility
// read is throttled with a fractional Retry-After, and eligibilities come
// in two pages.
type groupGraph struct {
	t         *testing.T
	mu        sync.Mutex
	polls     int
	status    []string // what successive GETs of the request answer
	posted    map[string]any
	seen      []string // method and path of every request
	active    bool
	throttled bool
}

func (g *groupGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	base := "http://" + r.Host
	const p = "/identityGovernance/privilegedAccess/group"
	switch {
	case r.URL.Path == "/groups":
		if got := r.URL.Query().Get("$filter"); got != "displayName eq 'Prod ''deployers'''" {
			g.t.Errorf("group filter = %q", got)
		}
		fmt.Fprintf(w, `{"@odata.context":"%s/$metadata#groups(id,displayName)","value":[{"id":%q,"displayName":"Prod 'deployers'"}]}`, base, prodGroupID)
	case r.URL.Path == p+"/eligibilityScheduleInstances/filterByCurrentUser(on='principal')" && !g.throttled:
		g.throttled = true
		w.Header().Set("Retry-After", "0.5")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"code":"TooManyRequests","message":"Too many requests.","innerError":{"request-id":"r1","date":"2026-03-02T09:00:00"}}}`)
	case r.URL.Path == p+"/eligibilityScheduleInstances/filterByCurrentUser(on='principal')" && r.URL.Query().Get("$skiptoken") == "":
		fmt.Fprintf(w, `{"value":[{"id":"e0","principalId":%q,"groupId":"00000000-0000-0000-0000-000000000001","accessId":"member","memberType":"Direct","startDateTime":"2026-01-01T00:00:00Z","endDateTime":null}],
			"@odata.nextLink":"%s%s/eligibilityScheduleInstances/filterByCurrentUser(on='principal')?$skiptoken=2"}`, alice, base, p)
	case r.URL.Path == p+"/eligibilityScheduleInstances/filterByCurrentUser(on='principal')":
		fmt.Fprintf(w, `{"value":[{"id":"e1","principalId":%q,"groupId":%q,"accessId":"member","memberType":"Direct","eligibilityScheduleId":"s1","startDateTime":"2026-01-01T00:00:00Z","endDateTime":null}]}`, alice, prodGroupID)
	case r.URL.Path == p+"/assignmentScheduleInstances/filterByCurrentUser(on='principal')":
		if !g.active {
			io.WriteString(w, `{"value":[]}`)
			return
		}
		fmt.Fprintf(w, `{"value":[{"id":"a1","principalId":%q,"groupId":%q,"accessId":"member","memberType":"Direct","assignmentType":"activated","startDateTime":"2026-03-02T09:00:00Z","endDateTime":"2026-03-02T10:00:00Z"}]}`, alice, prodGroupID)
	case r.URL.Path == p+"/assignmentScheduleRequests/filterByCurrentUser(on='principal')":
		io.WriteString(w, `{"value":[]}`)
	case r.URL.Path == p+"/assignmentScheduleRequests" && r.Method == http.MethodPost:
		if err := json.NewDecoder(r.Body).Decode(&g.posted); err != nil {
			g.t.Error(err)
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"@odata.context":"%s/$metadata#identityGovernance/privilegedAccess/group/assignmentScheduleRequests/$entity","id":%q,"status":"PendingApproval","completedDateTime":null,"createdDateTime":"2026-03-02T09:00:01.7462064Z","approvalId":"e3f1","customData":null,"createdBy":{"user":{"id":%q}},"action":"selfActivate","isValidationOnly":false,"justification":"test","scheduleInfo":{"startDateTime":"2026-03-02T09:00:00Z","recurrence":null,"expiration":{"type":"afterDuration","endDateTime":null,"duration":"PT15M"}},"ticketInfo":{"ticketNumber":null,"ticketSystem":null},"principalId":%q,"accessId":"member","groupId":%q,"targetScheduleId":"t1"}`, base, groupReqID, alice, alice, prodGroupID)
	case r.URL.Path == p+"/assignmentScheduleRequests/"+groupReqID && r.Method == http.MethodGet:
		st := g.status[min(g.polls, len(g.status)-1)]
		g.polls++
		if st == "Provisioned" {
			g.active = true
		}
		fmt.Fprintf(w, `{"id":%q,"status":%q,"action":"selfActivate","principalId":%q,"accessId":"member","groupId":%q,"createdDateTime":"2026-03-02T09:00:01Z"}`, groupReqID, st, alice, prodGroupID)
	case r.URL.Path == p+"/assignmentScheduleRequests/"+groupReqID+"/cancel" && r.Method == http.MethodPost:
		w.WriteHeader(http.StatusNoContent)
	default:
		g.t.Errorf("unexpected %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"UnknownError","message":"no such endpoint"}}`)
	}
}

func groupClient(t *testing.T, g *groupGraph) (*env, *pim.Client) {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	e := &env{clk: &recClock{Fake: clock.NewFake(t0)}}
	c, err := pim.New(pim.Config{GraphURL: srv.URL, Credential: staticCred{}, PollInterval: time.Second, PollMaxBackoff: 8 * time.Second,
		Clock: e.clk, Jitter: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

var groupTarget = mgpolicy.Target{Kind: mgpolicy.KindGroup, Role: "Prod 'deployers'", Access: mgpolicy.AccessMember}

func TestGroupActivation(t *testing.T) {
	g := &groupGraph{t: t, status: []string{"PendingApproval", "Provisioned"}}
	e, c := groupClient(t, g)
	var statuses []string
	gr, err := e.activate(c, context.Background(), pim.Request{Principal: alice, Target: groupTarget, Duration: 15 * time.Minute, Justification: "test"},
		func(s pim.Status) { statuses = append(statuses, s.Status) })
	if err != nil {
		t.Fatal(err)
	}
	if gr.RequestID != groupReqID || gr.RoleDefinitionID != prodGroupID || !gr.End.Equal(t0.Add(time.Hour)) {
		t.Fatalf("grant = %+v", gr)
	}
	if strings.Join(statuses, ",") != "PendingApproval,PendingApproval,Provisioned" {
		t.Errorf("statuses = %v", statuses)
	}
	want := map[string]any{"action": "selfActivate", "principalId": alice, "groupId": prodGroupID, "accessId": "member", "justification": "test"}
	for k, v := range want {
		if g.posted[k] != v {
			t.Errorf("posted %s = %v, want %v", k, g.posted[k], v)
		}
	}
	if _, ok := g.posted["roleDefinitionId"]; ok {
		t.Errorf("a group request carries roleDefinitionId: %v", g.posted)
	}
	if exp, _ := g.posted["scheduleInfo"].(map[string]any)["expiration"].(map[string]any); exp["duration"] != "PT15M" || exp["type"] != "afterDuration" {
		t.Errorf("posted scheduleInfo = %v", g.posted["scheduleInfo"])
	}
	// The 429 was waited out (0.5s) and the read retried: the clock moved.
	if !g.throttled {
		t.Error("the throttled read was never made")
	}
	// Active re-reads the group assignment for the same access only.
	if _, live, err := c.Active(context.Background(), alice, mgpolicy.Target{Kind: mgpolicy.KindGroup, Role: prodGroupID, Access: mgpolicy.AccessOwner}); err != nil || live {
		t.Errorf("owner read as live from a member assignment: %v, %v", live, err)
	}
	if _, live, err := c.Active(context.Background(), alice, mgpolicy.Target{Kind: mgpolicy.KindGroup, Role: prodGroupID, Access: mgpolicy.AccessMember}); err != nil || !live {
		t.Errorf("member not live: %v, %v", live, err)
	}
}

func TestGroupActivationRefusedAndCancelled(t *testing.T) {
	t.Run("denied", func(t *testing.T) {
		g := &groupGraph{t: t, status: []string{"Denied"}}
		e, c := groupClient(t, g)
		_, err := e.activate(c, context.Background(), pim.Request{Principal: alice, Target: groupTarget, Duration: time.Hour}, nil)
		if !strings.Contains(pim.UserMessage(err), "denied") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled on the groups API", func(t *testing.T) {
		g := &groupGraph{t: t, status: []string{"PendingApproval"}}
		e, c := groupClient(t, g)
		ctx, cancel := context.WithCancel(context.Background())
		_, err := e.activate(c, ctx, pim.Request{Principal: alice, Target: groupTarget, Duration: time.Hour}, func(s pim.Status) {
			if s.Status == "PendingApproval" {
				cancel()
			}
		})
		if err == nil {
			t.Fatal("a cancelled activation succeeded")
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if last := g.seen[len(g.seen)-1]; last != "POST /identityGovernance/privilegedAccess/group/assignmentScheduleRequests/"+groupReqID+"/cancel" {
			t.Fatalf("last request %q, want the groups API's cancel", last)
		}
	})
}
