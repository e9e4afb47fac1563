package pimtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func manyUsers(n int) (Scenario, []string) {
	sc := testScenario()
	var oids []string
	for i := range n {
		oid := fmt.Sprintf("%08x-0000-4000-8000-%012x", 0xc0000000+i, i)
		oids = append(oids, oid)
		sc.Users = append(sc.Users, User{ID: oid, Name: fmt.Sprintf("user%d", i)})
		sc.Eligibilities = append(sc.Eligibilities, Eligibility{Principal: oid, Role: dbaID}, Eligibility{Principal: oid, Role: readerID})
	}
	return sc, oids
}

// TestConcurrentRequests races creates, reads and approvals from many users:
// each user gets exactly one pending request however many creates race, and
// -race finds no unguarded state.
func TestConcurrentRequests(t *testing.T) {
	const users, racers = 40, 5
	sc, oids := manyUsers(users)
	e := startEmu(t, sc, WithPlainHTTP())
	e.hc.Transport.(*http.Transport).MaxIdleConnsPerHost = users * racers
	if !strings.HasPrefix(e.URL(), "http://127.0.0.1:") || e.CACertPEM() != nil {
		t.Fatalf("plain server: URL %q, CA %d bytes", e.URL(), len(e.CACertPEM()))
	}
	statuses := make([][]int, users)
	var wg sync.WaitGroup
	for u, oid := range oids {
		tok := e.Token(oid)
		statuses[u] = make([]int, racers)
		for i := range racers {
			wg.Go(func() {
				r, err := e.send(t, e.hc, http.MethodPost, requestsPath, tok, activation(oid, dbaID, "PT1H"))
				if err != nil {
					t.Error(err)
					return
				}
				statuses[u][i] = r.status
				if _, err := e.send(t, e.hc, http.MethodGet, myRequestsPath, tok, nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			if r, err := e.send(t, e.hc, http.MethodPost, requestsPath, tok, activation(oid, readerID, "PT15M")); err != nil || r.status != 201 {
				t.Errorf("reader activation: %v %v", r.status, err)
			}
		})
	}
	wg.Wait()
	for u, ss := range statuses {
		if count(ss, 201) != 1 || count(ss, 400) != racers-1 {
			t.Errorf("user %d: statuses %v, want one 201 and %d 400s", u, ss, racers-1)
		}
	}
	if got := e.CreateCount(); got != 2*users {
		t.Fatalf("CreateCount = %d, want %d", got, 2*users)
	}
	for _, r := range e.Requests() {
		if r.Status == StatusPendingApproval {
			wg.Go(func() {
				if err := e.Approve(r.ID); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Go(func() { e.Requests() })
	}
	wg.Wait()
	for _, r := range e.Requests() {
		if r.Status != StatusProvisioned {
			t.Errorf("request %s: %s after approval", r.ID, r.Status)
		}
	}
}

// TestThousandConcurrentCallers drives the handler in-process (no sockets,
// so the shared machine is spared 1,000 TLS handshakes) with the load the
// gate puts on it: each caller activates and then reads its assignments.
func TestThousandConcurrentCallers(t *testing.T) {
	const n = 1000
	sc, oids := manyUsers(n)
	s, err := NewServer(sc)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://127.0.0.1" + apiVersion + dirPrefix
	serve := func(tok, method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	var wg sync.WaitGroup
	for _, oid := range oids {
		wg.Go(func() {
			tok := s.Token(oid)
			body := `{"action":"selfActivate","principalId":"` + oid + `","roleDefinitionId":"` + readerID + `","directoryScopeId":"/"}`
			if rec := serve(tok, http.MethodPost, "roleAssignmentScheduleRequests", body); rec.Code != http.StatusCreated {
				t.Errorf("create for %s: %d %s", oid, rec.Code, rec.Body)
				return
			}
			rec := serve(tok, http.MethodGet, "roleAssignmentScheduleInstances/"+currentUser, "")
			if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), `"principalId"`) != 1 || !strings.Contains(rec.Body.String(), oid) {
				t.Errorf("instances for %s: %d %s", oid, rec.Code, rec.Body)
			}
		})
	}
	wg.Wait()
	if s.CreateCount() != n || s.HitCount() != 2*n || len(s.Requests()) != n {
		t.Fatalf("CreateCount %d, HitCount %d, requests %d; want %d, %d, %d", s.CreateCount(), s.HitCount(), len(s.Requests()), n, 2*n, n)
	}
}

// BenchmarkCreateAndRead measures the handler alone (no network): a
// create, a read of the request and a list of active assignments.
func BenchmarkCreateAndRead(b *testing.B) {
	sc, oids := manyUsers(b.N)
	s, err := NewServer(sc)
	if err != nil {
		b.Fatal(err)
	}
	toks := make([]string, len(oids))
	for i, oid := range oids {
		toks[i] = "Bearer " + s.Token(oid)
	}
	base := "https://127.0.0.1" + apiVersion + dirPrefix
	b.ResetTimer()
	for i := range b.N {
		body := `{"action":"selfActivate","principalId":"` + oids[i] + `","roleDefinitionId":"` + readerID + `","directoryScopeId":"/","scheduleInfo":{"expiration":{"type":"afterDuration","duration":"PT15M"}}}`
		for _, req := range []*http.Request{
			httptest.NewRequest(http.MethodPost, base+"roleAssignmentScheduleRequests", strings.NewReader(body)),
			httptest.NewRequest(http.MethodGet, base+"roleAssignmentScheduleInstances/"+currentUser, nil),
		} {
			req.Header.Set("Authorization", toks[i])
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code >= 300 {
				b.Fatalf("%s: %d %s", req.URL.Path, rec.Code, rec.Body)
			}
		}
	}
}
