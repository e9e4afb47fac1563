package authn

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"sync"
	"time"
)

const (
	// keysMaxAge is how long fetched keys are used before they are
	// fetched again; Entra rolls its keys over weeks.
	keysMaxAge = 24 * time.Hour
	// minRefresh spaces the fetches an unknown kid may cause, so that a
	// flood of tokens naming made-up keys costs Entra one fetch a minute.
	minRefresh = time.Minute
	// failRetry spaces the fetches while the gate has no keys at all.
	failRetry = 10 * time.Second
	// fetchTimeout bounds one metadata or key fetch.
	fetchTimeout = 10 * time.Second
	// maxDocBytes bounds the metadata and key documents.
	maxDocBytes = 1 << 20
	// minKeyBits refuses keys too short to trust.
	minKeyBits = 2048
)

// errUnknownKey is a token signed by a key the tenant does not publish.
var errUnknownKey = errors.New("the token is signed by a key this tenant does not publish")

// keySet holds the tenant's signing keys, fetched through its OpenID
// Connect metadata.
type keySet struct {
	client      *http.Client
	clock       Clock
	metadataURL string

	mu       sync.Mutex
	keys     map[string]*rsa.PublicKey // by kid
	fetched  time.Time                 // last successful fetch
	tried    time.Time                 // last attempt
	lastErr  error                     // of the last attempt, nil if it worked
	fetching chan struct{}             // closed when the running fetch ends; nil when none runs
}

func newKeySet(c *http.Client, clk Clock, metadataURL string) *keySet {
	return &keySet{client: c, clock: clk, metadataURL: metadataURL}
}

// key returns the public key named kid, fetching the key set when it is
// missing, old, or lacks kid (at most once per minRefresh for the last).
// Concurrent callers share one fetch.
func (s *keySet) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	s.mu.Lock()
	for waited := false; ; waited = true {
		now := s.clock.Now()
		k, known := s.keys[kid]
		fresh := s.keys != nil && now.Sub(s.fetched) < keysMaxAge
		if known && fresh {
			s.mu.Unlock()
			return k, nil
		}
		due := now.Sub(s.tried) >= minRefresh || (s.keys == nil && now.Sub(s.tried) >= failRetry) || s.tried.IsZero()
		if (!due && s.fetching == nil) || waited {
			err := s.lastErr
			s.mu.Unlock()
			switch {
			case known: // stale but still the tenant's: better than nothing while Entra is away
				return k, nil
			case s.keys == nil && err != nil:
				return nil, fmt.Errorf("cannot get the tenant's signing keys: %w", err)
			}
			return nil, errUnknownKey
		}
		if s.fetching == nil {
			s.fetching = make(chan struct{})
			s.tried = now
			go s.fetch(s.fetching)
		}
		ch := s.fetching
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
}

// ready reports whether keys are held, fetching them when none are. Once
// fetched, keys stay held (stale ones too): readiness does not flap with
// Entra's availability, and probes cause no fetch then.
func (s *keySet) ready(ctx context.Context) error {
	s.mu.Lock()
	held := s.keys != nil
	s.mu.Unlock()
	if held {
		return nil
	}
	if _, err := s.key(ctx, ""); err != nil && !errors.Is(err, errUnknownKey) {
		return err
	}
	return nil
}

// fetch reads the key set and signals done. It runs detached from any one
// request, so that a client that hangs up does not fail the others waiting.
func (s *keySet) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	keys, err := s.load(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if err == nil {
		s.keys, s.fetched = keys, s.clock.Now()
	}
	s.fetching = nil
	close(done)
}

func (s *keySet) load(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	var md struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := s.getJSON(ctx, s.metadataURL, &md); err != nil {
		return nil, err
	}
	base, _ := url.Parse(s.metadataURL) // built by MetadataURL from a checked authority
	ju, err := url.Parse(md.JWKSURI)
	if err != nil || md.JWKSURI == "" || ju.Scheme != base.Scheme {
		return nil, fmt.Errorf("%s: jwks_uri %q is not a %s URL", s.metadataURL, md.JWKSURI, base.Scheme)
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Use string `json:"use"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := s.getJSON(ctx, md.JWKSURI, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || k.Kid == "" {
			continue
		}
		if pk, err := rsaKey(k.N, k.E); err == nil {
			keys[k.Kid] = pk
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no RSA signing keys", md.JWKSURI)
	}
	return keys, nil
}

func (s *keySet) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocBytes+1))
	if err != nil {
		return fmt.Errorf("fetch %s: %w", u, err)
	}
	if len(b) > maxDocBytes {
		return fmt.Errorf("fetch %s: longer than %d bytes", u, maxDocBytes)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("fetch %s: %w", u, err)
	}
	return nil
}

func rsaKey(n64, e64 string) (*rsa.PublicKey, error) {
	nb, err := base64.RawURLEncoding.DecodeString(n64)
	if err != nil {
		return nil, err
	}
	eb, err := base64.RawURLEncoding.DecodeString(e64)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("bad exponent")
	}
	n := new(big.Int).SetBytes(nb)
	e := int(new(big.Int).SetBytes(eb).Int64())
	if n.BitLen() < minKeyBits || e < 3 || e%2 == 0 {
		return nil, errors.New("weak key")
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}
