package pim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

const devicePrompt = "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD1234 to authenticate."

// fakeUser stands in for azidentity's interactive credentials: no token
// until Authenticate, which shows a device code and then waits for the
// user (release) to finish.
type fakeUser struct {
	onPrompt func(string)
	release  chan error

	mu       sync.Mutex
	signedIn bool
	cae      bool // the sign-in was for CAE tokens, which azidentity caches apart
	auths    int
}

func (f *fakeUser) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.signedIn || f.cae != o.EnableCAE {
		return azcore.AccessToken{}, &azidentity.AuthenticationRequiredError{}
	}
	return azcore.AccessToken{Token: fakeJWT, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// fakeJWT is an unsigned token for oid 0b6b1c8e-7a0f-4a43-9a5e-3f3c2d1e0a11.
const fakeJWT = "eyJhbGciOiJub25lIn0.eyJvaWQiOiIwYjZiMWM4ZS03YTBmLTRhNDMtOWE1ZS0zZjNjMmQxZTBhMTEifQ.c2ln"

func (f *fakeUser) Authenticate(ctx context.Context, o *policy.TokenRequestOptions) (azidentity.AuthenticationRecord, error) {
	f.mu.Lock()
	f.auths++
	f.mu.Unlock()
	if f.onPrompt != nil {
		f.onPrompt(devicePrompt)
	}
	select {
	case err := <-f.release:
		if err != nil {
			return azidentity.AuthenticationRecord{}, err
		}
	case <-ctx.Done():
		return azidentity.AuthenticationRecord{}, ctx.Err()
	}
	f.mu.Lock()
	f.signedIn, f.cae = true, o.EnableCAE
	f.mu.Unlock()
	return azidentity.AuthenticationRecord{Authority: "login.microsoftonline.com", ClientID: "3b1a7c52-9d4e-4f60-8a1b-2c3d4e5f6a7b",
		HomeAccountID: "oid.tid", TenantID: "72f988bf-0000-4000-8000-000000000001", Username: "alice@contoso.com", Version: "1.0"}, nil
}

func newFake(t *testing.T, kind string) (*Interactive, *fakeUser, *bytes.Buffer, string) {
	t.Helper()
	f := &fakeUser{release: make(chan error, 1)}
	var stderr bytes.Buffer
	record := filepath.Join(t.TempDir(), "auth-record.json")
	i, err := newInteractiveWith(kind, record, &syncWriter{w: &stderr}, func(onPrompt func(string)) (authenticator, error) {
		if kind == "devicecode" {
			f.onPrompt = onPrompt
		}
		return f, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return i, f, &stderr, record
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// current is the sign-in under way (nil when none).
func (i *Interactive) current() *signIn {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cur
}

var graph = graphToken()

// A device code reaches the caller at once, in the error its refusal
// shows, and on stderr; the sign-in goes on in the background and a later
// call gets the token without a second prompt.
func TestDeviceCodeSignInInBackground(t *testing.T) {
	i, f, stderr, record := newFake(t, "devicecode")
	for range 2 { // the second call joins the sign-in under way
		_, err := i.GetToken(context.Background(), graph)
		var se *SignInError
		if !errors.As(err, &se) || se.Prompt != devicePrompt {
			t.Fatalf("err = %v, want a SignInError carrying the device code", err)
		}
		if m := UserMessage(err); !strings.Contains(m, "ABCD1234") || !strings.Contains(m, "call again") {
			t.Fatalf("UserMessage = %q", m)
		}
	}
	if !strings.Contains(stderr.String(), "ABCD1234") {
		t.Fatalf("stderr %q lacks the device code", stderr.String())
	}
	s := i.current()
	f.release <- nil
	<-s.done
	tok, err := i.GetToken(context.Background(), graph)
	if err != nil || tok.Token != fakeJWT {
		t.Fatalf("after sign-in: %q, %v", tok.Token, err)
	}
	if f.auths != 1 {
		t.Fatalf("%d sign-ins, want 1", f.auths)
	}
	rec, err := LoadRecord(record)
	if err != nil || rec.Username != "alice@contoso.com" || rec.ClientID != "3b1a7c52-9d4e-4f60-8a1b-2c3d4e5f6a7b" {
		t.Fatalf("kept record %+v, %v", rec, err)
	}
}

// A browser sign-in is waited for while the call lasts; a call that ends
// first is told to finish it, and a failed sign-in says so and lets the
// next call start again.
func TestBrowserSignIn(t *testing.T) {
	i, f, _, _ := newFake(t, "browser")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := i.GetToken(ctx, graph)
	var se *SignInError
	if !errors.As(err, &se) || se.Prompt != "" || !strings.Contains(UserMessage(err), "browser") {
		t.Fatalf("err = %v (%q), want the browser SignInError", err, UserMessage(err))
	}
	s := i.current()
	f.release <- errors.New("AADSTS50126: wrong password")
	<-s.done
	// The next call starts a new sign-in, the failed one being over.
	if _, err := i.GetToken(ctx, graph); !errors.As(err, &se) {
		t.Fatalf("err = %v, want a SignInError", err)
	}
	s2 := i.current()
	if s2 == nil || s2 == s {
		t.Fatal("a failed sign-in was not followed by a new one")
	}
	f.release <- nil
	<-s2.done
	if tok, err := i.GetToken(context.Background(), graph); err != nil || tok.Token != fakeJWT {
		t.Fatalf("after sign-in: %q, %v", tok.Token, err)
	}
}

func TestFailedSignInIsReported(t *testing.T) {
	i, f, _, _ := newFake(t, "browser")
	f.release <- errors.New("AADSTS50126: wrong password")
	_, err := i.GetToken(context.Background(), graph)
	var se *SignInError
	if !errors.As(err, &se) || se.Err == nil || !strings.Contains(UserMessage(err), "AADSTS50126") || !strings.Contains(UserMessage(err), "mcp-gate login") {
		t.Fatalf("err = %v (%q)", err, UserMessage(err))
	}
}

func TestRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "auth-record.json")
	rec := azidentity.AuthenticationRecord{Authority: "login.microsoftonline.com", ClientID: "3b1a7c52-9d4e-4f60-8a1b-2c3d4e5f6a7b",
		HomeAccountID: "a.b", TenantID: "72f988bf-0000-4000-8000-000000000001", Username: "alice@contoso.com", Version: "1.0"}
	if err := SaveRecord(path, rec); err != nil {
		t.Fatal(err)
	}
	got, err := LoadRecord(path)
	if err != nil || got != rec {
		t.Fatalf("LoadRecord = %+v, %v; want %+v", got, err, rec)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if got, err := LoadRecord(filepath.Join(dir, "absent.json")); err != nil || got != (azidentity.AuthenticationRecord{}) {
		t.Fatalf("missing file: %+v, %v; want the zero record", got, err)
	}
	for name, content := range map[string]string{"garbage": "{", "no version": `{"clientId":"x"}`, "future version": `{"version":"9.0"}`} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadRecord(p); err == nil {
			t.Errorf("%s: LoadRecord accepted %q", name, content)
		}
	}
}

// After mcp-gate login, the serving client finds the signed-in account for
// every token it asks for: its own reads and azcore's bearer policy (which
// always declares CAE) ask the way Login signed in, so nobody is prompted.
func TestLoginThenSilent(t *testing.T) {
	i, f, _, _ := newFake(t, "browser")
	f.release <- nil
	if _, err := i.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A prompt would wait for a user who never comes: fail instead.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(Config{Credential: i, CredentialKind: "browser", Transport: roleGraph{}})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := c.ResolveRole(ctx, "Ops"); err != nil || id != "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3" {
		t.Fatalf("ResolveRole through the pipeline = %q, %v", id, err)
	}
	if p, err := c.Principal(ctx); err != nil || p != "0b6b1c8e-7a0f-4a43-9a5e-3f3c2d1e0a11" {
		t.Fatalf("Principal = %q, %v", p, err)
	}
	if _, err := c.TokenInfo(ctx); err != nil {
		t.Fatal(err)
	}
	if f.auths != 1 {
		t.Fatalf("%d sign-ins, want the login alone", f.auths)
	}
}

// roleGraph answers every request with one role definition, Ops, after
// checking the request carries the signed-in user's token.
type roleGraph struct{}

func (roleGraph) Do(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "Bearer "+fakeJWT {
		return &http.Response{StatusCode: 401, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}, Request: req}, nil
	}
	body := `{"value":[{"id":"9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3","displayName":"Ops"}]}`
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), Header: http.Header{}, Request: req}, nil
}
