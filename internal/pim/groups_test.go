package pim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
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
		if msg := pim.UserMessage(err); !strings.Contains(msg, "an approver denied the activation of PIM group 'Prod 'deployers'' (member) (PIM request "+groupReqID+")") {
			t.Fatalf("err = %v; UserMessage %q does not name the group, its access and the request", err, msg)
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

// docGroupID and docRequestID are the ids of Microsoft's documented
// example of a user activating an eligible group membership
// (privilegedAccessGroup-post-assignmentScheduleRequests, example 2).
const (
	docGroupID   = "2b5ed229-4072-478d-9504-a047ebd4b07d"
	docRequestID = "6aacaee8-4089-4048-9510-3119367fc943"
)

// docGraph answers the groups API with the bodies Microsoft documents for
// it: create answers create (status and body), the instance lists the
// documented shapes, and every request is remembered.
type docGraph struct {
	t       *testing.T
	mu      sync.Mutex
	creates []func(w http.ResponseWriter) // successive create answers
	pending bool                          // the requests list holds a PendingApproval request for the group
	active  string                        // the assignment instance list's body once a create or a poll made it live
	posts   int
	polled  bool // the pending request was read Provisioned
	seen    []string
}

func (g *docGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	const p = "/identityGovernance/privilegedAccess/group"
	switch {
	case r.URL.Path == p+"/eligibilityScheduleInstances/filterByCurrentUser(on='principal')":
		fmt.Fprintf(w, `{"value":[{"@odata.type":"#microsoft.graph.privilegedAccessGroupEligibilityScheduleInstance","id":"8MYkhImhnkm70CbBdTyW1BbHHAdHgZdDpbqyEFlRzAs-1-e",
			"startDateTime":"2022-04-12T14:44:50.287Z","endDateTime":"2034-04-10T00:00:00Z","memberType":"Direct","principalId":%q,"accessId":"member",
			"groupId":%q,"eligibilityScheduleId":"77f71919-62f3-4d0c-9f88-0a0391b665cd"}]}`, alice, docGroupID)
	case r.URL.Path == p+"/assignmentScheduleInstances/filterByCurrentUser(on='principal')":
		if (g.posts == 0 && !g.polled) || g.active == "" {
			io.WriteString(w, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#identityGovernance/privilegedAccess/group/assignmentScheduleInstance","value":[]}`)
			return
		}
		io.WriteString(w, g.active)
	case r.URL.Path == p+"/assignmentScheduleRequests/filterByCurrentUser(on='principal')":
		if !g.pending {
			io.WriteString(w, `{"value":[]}`)
			return
		}
		fmt.Fprintf(w, `{"value":[{"id":%q,"status":"PendingApproval","action":"selfActivate","principalId":%q,"accessId":"member","groupId":%q,
			"createdDateTime":"2026-03-02T08:59:00Z","approvalId":"a1"}]}`, docRequestID, alice, docGroupID)
	case r.URL.Path == p+"/assignmentScheduleRequests" && r.Method == http.MethodPost:
		answer := g.creates[min(g.posts, len(g.creates)-1)]
		g.posts++
		answer(w)
	case r.URL.Path == p+"/assignmentScheduleRequests/"+docRequestID && r.Method == http.MethodGet:
		g.pending, g.polled = false, true
		fmt.Fprintf(w, `{"id":%q,"status":"Provisioned","action":"selfActivate","principalId":%q,"accessId":"member","groupId":%q}`, docRequestID, alice, docGroupID)
	default:
		g.t.Errorf("unexpected %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
	}
}

// docCreated is the documented 201 of example 2: Provisioned at once.
func docCreated(w http.ResponseWriter) {
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"@odata.type":"https://graph.microsoft.com/v1.0/$metadata#identityGovernance/privilegedAccess/group/assignmentScheduleRequests/$entity",
		"id":%q,"status":"Provisioned","completedDateTime":"2026-03-02T09:00:01.3404527Z","createdDateTime":"2026-03-02T09:00:00.7895614Z",
		"approvalId":null,"customData":null,"createdBy":{"user":{"id":%q}},"action":"selfActivate","isValidationOnly":false,
		"justification":"Activate assignment.","scheduleInfo":{"startDateTime":"2026-03-02T09:00:01.3404527Z","expiration":{"type":"afterDuration","duration":"PT2H"}},
		"ticketInfo":{"ticketNumber":null,"ticketSystem":null},"accessId":"member","principalId":%q,"groupId":%q,
		"targetScheduleId":"2b5ed229-4072-478d-9504-a047ebd4b07d_member_6aacaee8-4089-4048-9510-3119367fc943"}`, docRequestID, alice, alice, docGroupID)
}

func graphError(status int, code, msg string, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":%q,"innerError":{"date":"2026-03-02T09:00:00","request-id":"r-1","client-request-id":"c-1"}}}`, code, msg)
	}
}

// The documented instance shapes: an activated membership ending at a
// time, and (as the filterByCurrentUser example shows it) an assigned one
// with null start and end.
var (
	docActivated = fmt.Sprintf(`{"value":[{"@odata.type":"#microsoft.graph.privilegedAccessGroupAssignmentScheduleInstance","id":"lAPpYvVpN0KRkAEhdxReEJ2SvT9WjGJEhR4OuaezoqU-1",
		"startDateTime":"2026-03-02T09:00:01Z","endDateTime":"2026-03-02T11:00:01Z","accessId":"member","principalId":%q,"groupId":%q,
		"memberType":"Direct","assignmentType":"Activated","assignmentScheduleId":"s-1"}]}`, alice, docGroupID)
	docAssigned = fmt.Sprintf(`{"value":[{"@odata.type":"#microsoft.graph.privilegedAccessGroupAssignmentScheduleInstance","id":"lAPpYvVpN0KRkAEhdxReEJ2SvT9WjGJEhR4OuaezoqU-1",
		"startDateTime":null,"endDateTime":null,"accessId":"member","principalId":%q,"groupId":%q,
		"memberType":"Direct","assignmentType":"Assigned","assignmentScheduleId":"lAPpYvVpN0KRkAEhdxReEJ2SvT9WjGJEhR4OuaezoqU-1"}]}`, alice, docGroupID)
)

// TestGroupRecordedShapes runs activations against Microsoft's documented
// answers of the groups API: its statuses, its errors (which are the
// directory roles' codes), a permanent assignment with null times, and a
// throttled create with a fractional Retry-After.
func TestGroupRecordedShapes(t *testing.T) {
	docTarget := mgpolicy.Target{Kind: mgpolicy.KindGroup, Role: docGroupID, Access: mgpolicy.AccessMember}
	tests := []struct {
		name    string
		g       *docGraph
		want    pim.Grant // RequestID, End, AlreadyActive checked
		err     string    // a piece of UserMessage; empty: success
		posts   int
		waitFor time.Duration // a wait the client must have made
	}{
		{name: "Provisioned in the create answer",
			g:     &docGraph{creates: []func(http.ResponseWriter){docCreated}, active: docActivated},
			want:  pim.Grant{RequestID: docRequestID, End: time.Date(2026, 3, 2, 11, 0, 1, 0, time.UTC)},
			posts: 1},
		{name: "not eligible after all (EligibilityRule)",
			g: &docGraph{creates: []func(http.ResponseWriter){graphError(400, "RoleAssignmentRequestPolicyValidationFailed",
				`The following policy rules failed: ["EligibilityRule"]`)}},
			err: "you are not eligible", posts: 1},
		{name: "a pending request exists: wait on it",
			g: &docGraph{pending: true, active: docActivated, creates: []func(http.ResponseWriter){graphError(400, "PendingRoleAssignmentRequest",
				"There is already an existing pending Role assignment request.")}},
			want:  pim.Grant{RequestID: docRequestID, End: time.Date(2026, 3, 2, 11, 0, 1, 0, time.UTC)},
			posts: 0}, // the look-up before the create finds it
		{name: "already active, permanently assigned (null times)",
			g: &docGraph{active: docAssigned, creates: []func(http.ResponseWriter){graphError(400, "RoleAssignmentExists",
				"The Role assignment already exists.")}},
			want:  pim.Grant{End: t0.Add(24 * time.Hour), AlreadyActive: true},
			posts: 1},
		{name: "throttled create, fractional Retry-After",
			g: &docGraph{active: docActivated, creates: []func(http.ResponseWriter){
				graphError(429, "TooManyRequests", "Too many requests.", "Retry-After", "1.5"), docCreated}},
			want:    pim.Grant{RequestID: docRequestID, End: time.Date(2026, 3, 2, 11, 0, 1, 0, time.UTC)},
			posts:   2,
			waitFor: 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.g
			g.t = t
			srv := httptest.NewServer(g)
			t.Cleanup(srv.Close)
			e := &env{clk: &recClock{Fake: clock.NewFake(t0)}}
			c, err := pim.New(pim.Config{GraphURL: srv.URL, Credential: staticCred{}, PollInterval: time.Second, PollMaxBackoff: 8 * time.Second,
				Clock: e.clk, Jitter: func() float64 { return 0.5 }})
			if err != nil {
				t.Fatal(err)
			}
			gr, err := e.activate(c, context.Background(), pim.Request{Principal: alice, Target: docTarget, Duration: 2 * time.Hour, Justification: "Activate assignment."}, nil)
			switch {
			case tt.err != "" && (err == nil || !strings.Contains(pim.UserMessage(err), tt.err)):
				t.Fatalf("err = %v (%q), want one saying %q", err, pim.UserMessage(err), tt.err)
			case tt.err == "" && err != nil:
				t.Fatal(err)
			case tt.err == "" && (gr.RequestID != tt.want.RequestID || !gr.End.Equal(tt.want.End) || gr.AlreadyActive != tt.want.AlreadyActive || gr.RoleDefinitionID != docGroupID):
				t.Errorf("grant = %+v, want %+v", gr, tt.want)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.posts != tt.posts {
				t.Errorf("%d create POSTs, want %d: %v", g.posts, tt.posts, g.seen)
			}
			if tt.waitFor > 0 && !slices.Contains(e.clk.Waits(), tt.waitFor) {
				t.Errorf("waits %v lack the Retry-After %v", e.clk.Waits(), tt.waitFor)
			}
		})
	}
}
