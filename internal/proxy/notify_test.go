package proxy

import (
	"context"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// fakeSession is a registered client session that records what it is sent.
type fakeSession struct {
	id    string
	ch    chan mcp.JSONRPCNotification
	level mcp.LoggingLevel
}

func (s *fakeSession) SessionID() string                                   { return s.id }
func (s *fakeSession) NotificationChannel() chan<- mcp.JSONRPCNotification { return s.ch }
func (s *fakeSession) Initialize()                                         {}
func (s *fakeSession) Initialized() bool                                   { return true }
func (s *fakeSession) SetLogLevel(l mcp.LoggingLevel)                      { s.level = l }
func (s *fakeSession) GetLogLevel() mcp.LoggingLevel                       { return s.level }

func TestRelayScopesNotifications(t *testing.T) {
	url, _ := startUpstream(t, "up")
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}})
	a := &fakeSession{id: "a", ch: make(chan mcp.JSONRPCNotification, 8), level: mcp.LoggingLevelInfo}
	b := &fakeSession{id: "b", ch: make(chan mcp.JSONRPCNotification, 8), level: mcp.LoggingLevelError}
	for _, s := range []*fakeSession{a, b} {
		if err := p.srv.RegisterSession(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	p.subs.set("a", "test://x", true)
	p.subs.set("b", "test://y", true)
	p.subs.set("b", "test://y", false)

	aCalls, bothCalls := &callers{}, &callers{}
	aCalls.enter(caller{session: "a", principal: "alice"})
	bothCalls.enter(caller{session: "a", principal: "alice"})
	bothCalls.enter(caller{session: "b", principal: "bob"})
	oneUser := &callers{} // two sessions of one principal, as a client running several at once
	oneUser.enter(caller{session: "a", principal: "alice"})
	oneUser.enter(caller{session: "b", principal: "alice"})
	for _, tc := range []struct {
		name         string
		method       string
		params       string
		toA, toB     bool
		forgetBefore string
		from         *callers // the upstream's calls in flight
	}{
		{"update of a's resource", "notifications/resources/updated", `{"uri":"test://x"}`, true, false, "", nil},
		{"update of a resource b unsubscribed from", "notifications/resources/updated", `{"uri":"test://y"}`, false, false, "", nil},
		{"info log", "notifications/message", `{"level":"info","data":"i"}`, true, false, "", nil},
		{"error log", "notifications/message", `{"level":"error","data":"e"}`, true, true, "", nil},
		{"debug log", "notifications/message", `{"level":"debug","data":"d"}`, false, false, "", nil},
		{"error log during a's call", "notifications/message", `{"level":"error","data":"e"}`, true, false, "", aCalls},
		{"info log during a's call", "notifications/message", `{"level":"info","data":"i"}`, true, false, "", aCalls},
		{"error log during a's and b's calls", "notifications/message", `{"level":"error","data":"e"}`, false, false, "", bothCalls},
		{"error log during calls of two sessions of one principal", "notifications/message", `{"level":"error","data":"e"}`, true, true, "", oneUser},
		{"info log during calls of two sessions of one principal", "notifications/message", `{"level":"info","data":"i"}`, true, false, "", oneUser},
		{"error log with no call in flight", "notifications/message", `{"level":"error","data":"e"}`, true, true, "", &callers{}},
		{"a's subscriptions end with its session", "notifications/resources/updated", `{"uri":"test://x"}`, false, false, "a", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.forgetBefore != "" {
				p.subs.forget(tc.forgetBefore)
			}
			p.relay(tc.method, []byte(tc.params), tc.from)
			for _, s := range []struct {
				sess *fakeSession
				want bool
			}{{a, tc.toA}, {b, tc.toB}} {
				got := len(s.sess.ch) > 0
				for len(s.sess.ch) > 0 {
					<-s.sess.ch
				}
				if got != s.want {
					t.Errorf("session %s received: %v, want %v", s.sess.id, got, s.want)
				}
			}
		})
	}
	for _, tc := range []struct {
		sid  string
		set  mcp.LoggingLevel
		want mcp.LoggingLevel
	}{
		{"a", mcp.LoggingLevelInfo, mcp.LoggingLevelInfo},
		{"b", mcp.LoggingLevelError, mcp.LoggingLevelInfo}, // b's quieter level does not quieten a
		{"b", mcp.LoggingLevelDebug, mcp.LoggingLevelDebug},
		{"b", mcp.LoggingLevelWarning, mcp.LoggingLevelInfo},
	} {
		if lv := p.subs.setLevel(tc.sid, tc.set); lv != tc.want {
			t.Errorf("%s sets %s: upstream level %s, want %s", tc.sid, tc.set, lv, tc.want)
		}
	}
	p.subs.forget("a")
	if lv := p.subs.setLevel("b", mcp.LoggingLevelError); lv != mcp.LoggingLevelError {
		t.Errorf("after a ended: upstream level %s, want error", lv)
	}
}
