package pimtest

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestThrottleEveryNth(t *testing.T) {
	for _, retryAfter := range []string{"2", "0.5"} {
		t.Run(retryAfter, func(t *testing.T) {
			sc := testScenario()
			sc.Faults = Faults{ThrottleEvery: 3, RetryAfter: retryAfter}
			e := startEmu(t, sc)
			tok := e.Token(alice)
			var got []int
			for range 7 {
				r := e.do(t, http.MethodGet, eligibilityPath, tok, nil)
				got = append(got, r.status)
				if r.status == http.StatusTooManyRequests {
					r.wantError(t, 429, "TooManyRequests")
					if h := r.header.Get("Retry-After"); h != retryAfter {
						t.Errorf("Retry-After = %q, want %q", h, retryAfter)
					}
				}
			}
			want := []int{200, 200, 429, 200, 200, 429, 200}
			if !equal(got, want) {
				t.Fatalf("statuses %v, want %v", got, want)
			}
			if e.HitCount() != 7 {
				t.Errorf("HitCount = %d, want 7 (throttled requests count)", e.HitCount())
			}
			// SetFaults restarts the count.
			e.SetFaults(Faults{ThrottleEvery: 2})
			if s := e.do(t, http.MethodGet, eligibilityPath, tok, nil).status; s != 200 {
				t.Errorf("first request after SetFaults: %d", s)
			}
			r := e.do(t, http.MethodGet, eligibilityPath, tok, nil)
			r.wantError(t, 429, "TooManyRequests")
			if h := r.header.Get("Retry-After"); h != "" {
				t.Errorf("Retry-After = %q with none configured", h)
			}
		})
	}
}

func TestServerErrors(t *testing.T) {
	outcomes := func(f Faults) []int {
		sc := testScenario()
		sc.Faults = f
		e := startEmu(t, sc)
		tok := e.Token(alice)
		var got []int
		for range 30 {
			got = append(got, e.do(t, http.MethodGet, eligibilityPath, tok, nil).status)
		}
		return got
	}
	half := Faults{ErrorRate: 0.5, Seed: 7}
	first, second := outcomes(half), outcomes(half)
	if !equal(first, second) {
		t.Fatalf("same seed, different outcomes:\n%v\n%v", first, second)
	}
	if n := count(first, 503); n == 0 || n == len(first) {
		t.Errorf("error rate 0.5 gave %d of %d 503s", n, len(first))
	}
	if n := count(outcomes(Faults{ErrorRate: 1, ErrorStatus: 500}), 500); n != 30 {
		t.Errorf("error rate 1 with status 500: %d of 30", n)
	}

	sc := testScenario()
	sc.Faults = Faults{ErrorRate: 1, RetryAfter: "1"}
	e := startEmu(t, sc)
	r := e.do(t, http.MethodPost, requestsPath, e.Token(alice), activation(alice, dbaID, "PT1H"))
	r.wantError(t, 503, "ServiceUnavailable")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q on 503", r.header.Get("Retry-After"))
	}
	if e.CreateCount() != 0 || len(e.Requests()) != 0 {
		t.Error("a create answered 503 created a request")
	}
}

// transports gives an HTTP/2 and an HTTP/1.1 client for e, since a
// connection is dropped differently on each.
func transports(t *testing.T, e *emu) map[string]*http.Client {
	roots := e.hc.Transport.(*http.Transport).TLSClientConfig.RootCAs
	h1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}}}
	t.Cleanup(h1.CloseIdleConnections)
	return map[string]*http.Client{"h2": e.hc, "http1": {Transport: h1}}
}

func TestDropEvery(t *testing.T) {
	sc := testScenario()
	e := startEmu(t, sc)
	tok := e.Token(alice)
	for name, hc := range transports(t, e) {
		t.Run(name, func(t *testing.T) {
			e.SetFaults(Faults{DropEvery: 2})
			if r, err := e.send(t, hc, http.MethodGet, eligibilityPath, tok, nil); err != nil || r.status != 200 || r.proto != name {
				t.Fatalf("first request: %v %v over %s", r.status, err, r.proto)
			}
			before := e.CreateCount()
			if r, err := e.send(t, hc, http.MethodPost, requestsPath, tok, activation(alice, dbaID, "PT1H")); err == nil {
				t.Fatalf("second request got a reply (%d %s), want the connection dropped", r.status, r.raw)
			}
			if e.CreateCount() != before {
				t.Error("a dropped create was processed")
			}
		})
	}
	if len(e.Requests()) != 0 {
		t.Errorf("requests after dropped creates: %v", e.Requests())
	}
}

func TestDropNextCreateReply(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	for name, hc := range transports(t, e) {
		t.Run(name, func(t *testing.T) {
			e.DropNextCreateReply()
			// A refused create does not use up the drop.
			e.do(t, http.MethodPost, requestsPath, e.Token(carol), activation(carol, dbaID, "PT1H")).wantError(t, 400, "RoleAssignmentRequestPolicyValidationFailed")
			before := e.CreateCount()
			if r, err := e.send(t, hc, http.MethodPost, requestsPath, tok, activation(alice, dbaID, "PT1H")); err == nil {
				t.Fatalf("create got a reply (%d %s), want the connection dropped", r.status, r.raw)
			}
			if e.CreateCount() != before+1 {
				t.Fatalf("CreateCount %d -> %d, want the dropped create processed", before, e.CreateCount())
			}
			reqs := e.Requests()
			last := reqs[len(reqs)-1]
			if last.Principal != alice || last.RoleDefinitionID != dbaID || last.Status != StatusPendingApproval {
				t.Fatalf("recorded request %+v", last)
			}
			// What a client should do next: find it instead of creating another.
			mine := e.do(t, http.MethodGet, myRequestsPath+"?$filter=roleDefinitionId eq '"+dbaID+"' and status eq 'PendingApproval'", tok, nil).values(t)
			if len(mine) != 1 || mine[0]["id"] != last.ID {
				t.Fatalf("pending lookup: %v, want %s", mine, last.ID)
			}
			e.do(t, http.MethodPost, requestsPath, tok, activation(alice, dbaID, "PT1H")).wantError(t, 400, "PendingRoleAssignmentRequest")
			// The drop was one-shot.
			if r := e.do(t, http.MethodPost, requestsPath+"/"+last.ID+"/cancel", tok, nil); r.status != http.StatusNoContent {
				t.Fatalf("cancel: %d %s", r.status, r.raw)
			}
			if r := e.do(t, http.MethodPost, requestsPath, tok, activation(alice, readerID, "PT15M")); r.status != http.StatusCreated {
				t.Fatalf("create after the drop: %d %s", r.status, r.raw)
			}
			if r := e.do(t, http.MethodPost, requestsPath, tok, map[string]any{"action": "selfDeactivate", "principalId": alice, "roleDefinitionId": readerID, "directoryScopeId": "/"}); r.status != http.StatusCreated {
				t.Fatalf("deactivate: %d %s", r.status, r.raw)
			}
		})
	}
}

// TestLatencyComesFirst checks latency is added before the request is
// handled and that a client giving up ends the wait.
func TestLatencyComesFirst(t *testing.T) {
	sc := testScenario()
	sc.Faults = Faults{Latency: time.Hour}
	s, err := NewServer(sc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := strings.NewReader(`{"action":"selfActivate","principalId":"` + alice + `","roleDefinitionId":"` + readerID + `","directoryScopeId":"/"}`)
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "https://127.0.0.1"+apiVersion+dirPrefix+"roleAssignmentScheduleRequests", body)
	req.Header.Set("Authorization", "Bearer "+s.Token(alice))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req) // returns at once: the context is already done
	if rec.Body.Len() != 0 || s.CreateCount() != 0 {
		t.Fatalf("a request whose client left during the latency was handled: %d %s", rec.Code, rec.Body)
	}
	s.SetFaults(Faults{Latency: time.Nanosecond})
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, "https://127.0.0.1"+apiVersion+dirPrefix+"roleAssignmentScheduleRequests",
		strings.NewReader(`{"action":"selfActivate","principalId":"`+alice+`","roleDefinitionId":"`+readerID+`","directoryScopeId":"/"}`))
	req.Header.Set("Authorization", "Bearer "+s.Token(alice))
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("with a short latency: %d %s", rec.Code, rec.Body)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func count(xs []int, v int) int {
	n := 0
	for _, x := range xs {
		if x == v {
			n++
		}
	}
	return n
}

// AssignmentReadStatus fails assignment reads only, as a token without
// read permission on them, or an outage of that API, would.
func TestAssignmentReadStatus(t *testing.T) {
	tests := []struct {
		status int
		code   string
	}{
		{http.StatusForbidden, "Authorization_RequestDenied"},
		{http.StatusServiceUnavailable, "ServiceUnavailable"},
		{http.StatusInternalServerError, "ServiceUnavailable"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			sc := testScenario()
			sc.Active = []Assignment{{Principal: alice, Role: "Reader"}}
			sc.Faults = Faults{AssignmentReadStatus: tt.status}
			e := startEmu(t, sc)
			tok := e.Token(alice)
			e.do(t, http.MethodGet, assignmentsPath, tok, nil).wantError(t, tt.status, tt.code)
			e.do(t, http.MethodGet, "/roleManagement/directory/roleAssignmentScheduleInstances", tok, nil).wantError(t, tt.status, tt.code)
			if r := e.do(t, http.MethodGet, eligibilityPath, tok, nil); r.status != http.StatusOK {
				t.Errorf("eligibility read: %d %s", r.status, r.raw)
			}
			e.SetFaults(Faults{})
			if got := e.active(t, tok); len(got) != 1 {
				t.Errorf("after the fault is lifted: %v", got)
			}
		})
	}
}
