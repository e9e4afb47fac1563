package pim

import (
	"bytes"
	"context"
	"errors"
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
	auths    int
}

func (f *fakeUser) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.signedIn {
		return azcore.AccessToken{}, &azidentity.AuthenticationRequiredError{}
	}
	return azcore.AccessToken{Token: "tok", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (f *fakeUser) Authenticate(ctx context.Context, _ *policy.TokenRequestOptions) (azidentity.AuthenticationRecord, error) {
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
	f.signedIn = true
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

var graph = policy.TokenRequestOptions{Scopes: []string{GraphScope}}

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
	if err != nil || tok.Token != "tok" {
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
	if tok, err := i.GetToken(context.Background(), graph); err != nil || tok.Token != "tok" {
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
