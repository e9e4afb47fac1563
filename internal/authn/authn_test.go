package authn

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

const (
	tenant   = "11111111-2222-3333-4444-555555555555"
	other    = "99999999-2222-3333-4444-555555555555"
	audience = "api://mcp-gate"
	userOID  = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// issuer is a minimal Entra tenant: discovery document and key set, with
// keys the test can add and a count of key set fetches.
type issuer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey
	fetches atomic.Int64
}

var (
	keyOnce sync.Once
	keyPool []*rsa.PrivateKey
)

// testKey returns the i-th of a few RSA keys made once per test binary.
func testKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keyPool = append(keyPool, k)
		}
	})
	return keyPool[i]
}

func newIssuer(t *testing.T) *issuer {
	iss := &issuer{keys: map[string]*rsa.PrivateKey{"k1": testKey(t, 0)}}
	mux := http.NewServeMux()
	mux.HandleFunc("/"+tenant+"/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   iss.srv.URL + "/" + tenant + "/v2.0",
			"jwks_uri": iss.srv.URL + "/" + tenant + "/discovery/v2.0/keys",
		})
	})
	mux.HandleFunc("/"+tenant+"/discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		iss.fetches.Add(1)
		iss.mu.Lock()
		defer iss.mu.Unlock()
		var set []map[string]string
		for kid, k := range iss.keys {
			set = append(set, map[string]string{
				"kty": "RSA", "use": "sig", "kid": kid,
				"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
			})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	})
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	return iss
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (iss *issuer) addKey(kid string, k *rsa.PrivateKey) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys[kid] = k
}

func (iss *issuer) validator(t *testing.T, clk Clock) *Validator {
	t.Helper()
	v, err := New(Config{Authority: iss.srv.URL, TenantID: tenant, Audiences: []string{audience}, Clock: clk, HTTPClient: iss.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// goodClaims are a valid token's claims at t0.
func (iss *issuer) goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": iss.srv.URL + "/" + tenant + "/v2.0", "aud": audience, "tid": tenant, "oid": userOID,
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
		"scp": "mcp.call other", "amr": []string{"pwd", "mfa"},
	}
}

func sign(t *testing.T, c jwt.MapClaims, kid string, k *rsa.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidate(t *testing.T) {
	iss := newIssuer(t)
	k1 := testKey(t, 0)
	with := func(key string, val any) jwt.MapClaims {
		c := iss.goodClaims()
		if val == nil {
			delete(c, key)
		} else {
			c[key] = val
		}
		return c
	}
	unsigned := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hsWithPublicKey := func(c jwt.MapClaims) string {
		// The classic confusion: HMAC keyed by the public key the verifier holds.
		pub, _ := x509.MarshalPKIXPublicKey(&k1.PublicKey)
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(pub)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		token string
		now   time.Time
		want  string // substring of the refusal; "" for valid
	}{
		{"valid", sign(t, iss.goodClaims(), "k1", k1), t0, ""},
		{"valid within skew after exp", sign(t, iss.goodClaims(), "k1", k1), t0.Add(time.Hour + 30*time.Second), ""},
		{"expired", sign(t, iss.goodClaims(), "k1", k1), t0.Add(time.Hour + 2*time.Minute), "expired"},
		{"not yet valid", sign(t, with("nbf", t0.Add(10*time.Minute).Unix()), "k1", k1), t0, "not valid yet"},
		{"no exp", sign(t, with("exp", nil), "k1", k1), t0, "exp"},
		{"wrong audience", sign(t, with("aud", "https://graph.microsoft.com"), "k1", k1), t0, "audience"},
		{"no audience", sign(t, with("aud", nil), "k1", k1), t0, "aud claim"},
		{"wrong issuer", sign(t, with("iss", "https://login.microsoftonline.com/"+tenant+"/v2.0"), "k1", k1), t0, "issuer"},
		{"wrong tenant", sign(t, with("tid", other), "k1", k1), t0, "tenant"},
		{"unsigned", unsigned(iss.goodClaims()), t0, "not signed (RS256)"},
		{"wrong key", sign(t, iss.goodClaims(), "k1", testKey(t, 1)), t0, "not signed (RS256)"},
		{"HS256 keyed by the public key", hsWithPublicKey(iss.goodClaims()), t0, "not signed (RS256)"},
		{"unknown kid", sign(t, iss.goodClaims(), "nope", testKey(t, 1)), t0, "does not publish"},
		{"missing oid", sign(t, with("oid", nil), "k1", k1), t0, "oid"},
		{"oid not a GUID", sign(t, with("oid", "alice"), "k1", k1), t0, "oid"},
		{"garbage", "not.a.jwt", t0, "not a signed JWT"},
		{"too long", strings.Repeat("a", maxTokenBytes+1), t0, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := iss.validator(t, clock.NewFake(tt.now))
			id, err := v.Validate(context.Background(), tt.token)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if id.OID != userOID || id.TenantID != tenant || !id.HasScope("mcp.call") || id.HasScope("mcp") {
					t.Errorf("identity = %+v", id)
				}
				return
			}
			var ae *Error
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an *Error containing %q", err, tt.want)
			}
		})
	}
}

func TestNoToken(t *testing.T) {
	v := newIssuer(t).validator(t, clock.NewFake(t0))
	if _, err := v.Validate(context.Background(), ""); !errors.Is(err, ErrNoToken) {
		t.Fatalf("Validate(\"\") = %v, want ErrNoToken", err)
	}
}

// A key published after the first fetch is found by refetching on its kid;
// a flood of tokens naming unknown kids costs one fetch per minRefresh.
func TestUnknownKidRefresh(t *testing.T) {
	iss := newIssuer(t)
	clk := clock.NewFake(t0)
	v := iss.validator(t, clk)
	ctx := context.Background()
	if _, err := v.Validate(ctx, sign(t, iss.goodClaims(), "k1", testKey(t, 0))); err != nil {
		t.Fatal(err)
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Fatalf("key set fetched %d times, want 1", n)
	}
	for i := range 50 {
		bogus := sign(t, iss.goodClaims(), "bogus-"+string(rune('a'+i%26)), testKey(t, 1))
		if _, err := v.Validate(ctx, bogus); err == nil {
			t.Fatal("a token with an unknown kid validated")
		}
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Fatalf("50 unknown kids within a minute of the last fetch caused %d fetches, want none beyond the first", n-1)
	}

	iss.addKey("k2", testKey(t, 2))
	clk.Advance(minRefresh)
	rotated := sign(t, iss.goodClaims(), "k2", testKey(t, 2))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Validate(ctx, rotated)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("token signed with a newly published key: %v", err)
		}
	}
	if n := iss.fetches.Load(); n != 2 {
		t.Fatalf("key set fetched %d times, want 2 (concurrent callers share the refresh)", n)
	}
}

// Until the keys can be fetched, tokens are refused with an error that is
// not an invalid-token one (the client's token may be fine).
func TestKeysUnavailable(t *testing.T) {
	iss := newIssuer(t)
	iss.srv.Close()
	v := iss.validator(t, clock.NewFake(t0))
	_, err := v.Validate(context.Background(), sign(t, iss.goodClaims(), "k1", testKey(t, 0)))
	var ae *Error
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "signing keys") {
		t.Fatalf("Validate with the issuer down = %v, want a key fetch error", err)
	}
}

// Ready fetches the keys when none are held, reports a failure to get
// them, and once they are held answers without fetching again.
func TestReady(t *testing.T) {
	ctx := context.Background()
	down := newIssuer(t)
	down.srv.Close()
	if err := down.validator(t, clock.NewFake(t0)).Ready(ctx); err == nil || !strings.Contains(err.Error(), "signing keys") {
		t.Fatalf("Ready with the issuer down = %v, want a key fetch error", err)
	}

	iss := newIssuer(t)
	clk := clock.NewFake(t0)
	v := iss.validator(t, clk)
	for range 3 {
		if err := v.Ready(ctx); err != nil {
			t.Fatalf("Ready = %v", err)
		}
		clk.Advance(minRefresh) // past the spacing an unknown kid would respect
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Fatalf("key set fetched %d times, want once", n)
	}
	if _, err := v.Validate(ctx, sign(t, iss.goodClaims(), "k1", testKey(t, 0))); err != nil || iss.fetches.Load() != 1 {
		t.Fatalf("a token after Ready: %v, %d fetches; want valid with no other fetch", err, iss.fetches.Load())
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"tenant not a GUID", Config{TenantID: "common", Audiences: []string{audience}}},
		{"no audience", Config{TenantID: tenant}},
		{"authority not a URL", Config{TenantID: tenant, Audiences: []string{audience}, Authority: "login.microsoftonline.com"}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: New accepted %+v", tt.name, tt.cfg)
		}
	}
}
