package pim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// DefaultRecordFile is where `mcp-gate login` keeps the authentication
// record that the browser and devicecode credentials load.
const DefaultRecordFile = "~/.mcp-gate/auth-record.json"

// signInTimeout bounds an interactive sign-in started in the background: a
// device code expires after 15 minutes.
const signInTimeout = 15 * time.Minute

// ErrNoClientID says an interactive credential has no app registration.
var ErrNoClientID = errors.New("needs approvals.clientId: the application (client) id of your organisation's app registration " +
	"with the delegated Microsoft Graph permissions (see docs/pim-client.md); the Azure CLI's own app id cannot get them (AADSTS65002)")

// authenticator is what azidentity's DeviceCodeCredential and
// InteractiveBrowserCredential have in common.
type authenticator interface {
	azcore.TokenCredential
	Authenticate(ctx context.Context, opts *policy.TokenRequestOptions) (azidentity.AuthenticationRecord, error)
}

// Interactive is a browser or device-code credential that never holds a
// token request hostage to a sign-in: when the user must sign in, the
// sign-in starts in the background and GetToken returns a *SignInError at
// once (for a device code, as soon as Entra has issued the code, so the
// refusal can show it). A later GetToken finds the signed-in account. The
// record of that account is kept in a file, so the next process signs in
// silently from the token cache.
type Interactive struct {
	kind       string
	recordFile string
	prompt     io.Writer
	cred       authenticator

	mu  sync.Mutex
	cur *signIn // the sign-in under way, if any
}

type signIn struct {
	prompted chan struct{} // closed once the device code message is known
	done     chan struct{} // closed when the sign-in ended; err is then set
	message  string
	err      error
}

// SignInError says the user must sign in before mcp-gate can get a token.
type SignInError struct {
	Kind   string // browser or devicecode
	Prompt string // devicecode: Entra's instructions (the URL and the code)
	Err    error  // why the last sign-in failed, when it did
}

func (e *SignInError) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("pim: %s sign-in failed: %v", e.Kind, e.Err)
	case e.Prompt != "":
		return "pim: waiting for a device code sign-in: " + e.Prompt
	}
	return "pim: waiting for a browser sign-in"
}

func (e *SignInError) Unwrap() error { return e.Err }

// UserMessage tells the user how to finish signing in.
func (e *SignInError) UserMessage() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("signing in to Microsoft Entra failed (%v): run `mcp-gate login` in a terminal, then call again", e.Err)
	case e.Prompt != "":
		return "sign in to Microsoft Entra first. " + strings.TrimSpace(e.Prompt) + " Then call again. (`mcp-gate login` signs in once for every later start.)"
	}
	return "finish signing in to Microsoft Entra in the browser window mcp-gate opened, then call again (`mcp-gate login` signs in once for every later start)"
}

func newInteractive(kind string, opts CredentialOptions, prompt io.Writer) (*Interactive, error) {
	if opts.ClientID == "" {
		return nil, ErrNoClientID
	}
	if !IsGUID(opts.ClientID) {
		return nil, fmt.Errorf("approvals.clientId %q is not a GUID", opts.ClientID)
	}
	rec, err := LoadRecord(opts.RecordFile)
	if err != nil {
		fmt.Fprintf(prompt, "mcp-gate: ignoring the sign-in record: %v\n", err)
	}
	if rec.ClientID != "" && (!strings.EqualFold(rec.ClientID, opts.ClientID) || opts.TenantID != "" && !strings.EqualFold(rec.TenantID, opts.TenantID)) {
		// A record from another app registration or tenant would never
		// sign in silently here.
		rec = azidentity.AuthenticationRecord{}
	}
	cache, err := persistentCache()
	if err != nil {
		fmt.Fprintf(prompt, "mcp-gate: tokens are kept in memory only: %v\n", err)
	}
	build := func(onPrompt func(string)) (authenticator, error) {
		if kind == "browser" {
			return azidentity.NewInteractiveBrowserCredential(&azidentity.InteractiveBrowserCredentialOptions{
				TenantID: opts.TenantID, ClientID: opts.ClientID, AuthenticationRecord: rec, Cache: cache,
				DisableAutomaticAuthentication: true,
			})
		}
		return azidentity.NewDeviceCodeCredential(&azidentity.DeviceCodeCredentialOptions{
			TenantID: opts.TenantID, ClientID: opts.ClientID, AuthenticationRecord: rec, Cache: cache,
			DisableAutomaticAuthentication: true,
			UserPrompt: func(_ context.Context, m azidentity.DeviceCodeMessage) error {
				onPrompt(m.Message)
				return nil
			},
		})
	}
	return newInteractiveWith(kind, opts.RecordFile, prompt, build)
}

// newInteractiveWith builds an Interactive around the authenticator build
// returns; build gets the callback a device code credential calls with
// Entra's instructions.
func newInteractiveWith(kind, recordFile string, prompt io.Writer, build func(onPrompt func(string)) (authenticator, error)) (*Interactive, error) {
	i := &Interactive{kind: kind, recordFile: recordFile, prompt: prompt}
	cred, err := build(i.onPrompt)
	if err != nil {
		return nil, err
	}
	i.cred = cred
	return i, nil
}

// onPrompt shows a device code on stderr and hands it to the token
// requests waiting for it. Never stdout: that is the MCP stream.
func (i *Interactive) onPrompt(msg string) {
	fmt.Fprintln(i.prompt, "mcp-gate:", msg)
	i.mu.Lock()
	defer i.mu.Unlock()
	if s := i.cur; s != nil && s.message == "" {
		s.message = msg
		close(s.prompted)
	}
}

// GetToken returns a token silently when the user has signed in (in this
// process, or before with `mcp-gate login`), and otherwise starts a sign-in
// and returns a *SignInError saying how to finish it.
func (i *Interactive) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := i.cred.GetToken(ctx, opts)
	var need *azidentity.AuthenticationRequiredError
	if !errors.As(err, &need) {
		return tok, err
	}
	s := i.start(opts)
	if i.kind == "devicecode" {
		select {
		case <-s.prompted:
		case <-s.done:
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	} else {
		select {
		case <-s.done:
		case <-ctx.Done():
			return azcore.AccessToken{}, &SignInError{Kind: i.kind}
		}
	}
	select {
	case <-s.done:
		if s.err != nil {
			return azcore.AccessToken{}, &SignInError{Kind: i.kind, Err: s.err}
		}
		return i.cred.GetToken(ctx, opts)
	default:
		return azcore.AccessToken{}, &SignInError{Kind: i.kind, Prompt: s.message}
	}
}

// start joins the sign-in under way or starts one in the background, on a
// context of its own: the call that needed it will not wait for the user.
func (i *Interactive) start(opts policy.TokenRequestOptions) *signIn {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cur != nil {
		return i.cur
	}
	s := &signIn{prompted: make(chan struct{}), done: make(chan struct{})}
	i.cur = s
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), signInTimeout)
		defer cancel()
		_, err := i.authenticate(ctx, opts)
		i.mu.Lock()
		s.err = err
		i.cur = nil
		i.mu.Unlock()
		close(s.done)
	}()
	return s
}

// Login signs the user in now (prompting on stderr for a device code, or
// in the browser) and keeps the authentication record.
func (i *Interactive) Login(ctx context.Context) (azidentity.AuthenticationRecord, error) {
	return i.authenticate(ctx, graphToken())
}

func (i *Interactive) authenticate(ctx context.Context, opts policy.TokenRequestOptions) (azidentity.AuthenticationRecord, error) {
	rec, err := i.cred.Authenticate(ctx, &opts)
	if err != nil {
		return rec, err
	}
	if i.recordFile != "" {
		if err := SaveRecord(i.recordFile, rec); err != nil {
			fmt.Fprintf(i.prompt, "mcp-gate: signed in, but could not keep the sign-in record: %v\n", err)
		}
	}
	return rec, nil
}

// LoadRecord reads an authentication record; a missing file (or an empty
// path) is the zero record and no error.
func LoadRecord(path string) (azidentity.AuthenticationRecord, error) {
	var rec azidentity.AuthenticationRecord
	if path == "" {
		return rec, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return azidentity.AuthenticationRecord{}, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// SaveRecord writes an authentication record readable by the user only.
// It holds no secret (account and tenant ids, the user name), but it is
// nobody else's business.
func SaveRecord(path string, rec azidentity.AuthenticationRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".auth-record-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
