// Package health serves the gate's liveness (/healthz) and readiness
// (/readyz) probes. Liveness says only that the process answers HTTP;
// readiness runs named checks, each bounded in time, and names every check
// that fails so an operator sees what is not ready.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness condition. Probe returns nil when it holds.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Clock is the time source of Cached; tests pass a fake one.
type Clock interface{ Now() time.Time }

// Cached wraps probe so that its result is reused for ttl: readiness
// probes arrive every few seconds from every kubelet, and a remote
// dependency (Graph) should not see each one. Concurrent callers wait for
// one probe rather than each starting their own.
func Cached(probe func(context.Context) error, ttl time.Duration, clock Clock) func(context.Context) error {
	var (
		mu   sync.Mutex
		at   time.Time
		last error
		done bool
	)
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if now := clock.Now(); !done || now.Sub(at) >= ttl {
			last, at, done = probe(ctx), now, true
		}
		return last
	}
}

// Healthz answers 200 while the process serves HTTP.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Report is the /readyz body.
type Report struct {
	Ready bool `json:"ready"`
	// NotReady maps each failing check's name to why.
	NotReady map[string]string `json:"notReady,omitempty"`
}

// Readyz runs checks in parallel, each within timeout, and answers 200 when
// all pass, else 503 with a Report naming the failures.
func Readyz(checks []Check, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		errs := make([]error, len(checks))
		var wg sync.WaitGroup
		for i, c := range checks {
			wg.Go(func() { errs[i] = c.Probe(ctx) })
		}
		wg.Wait()
		rep := Report{Ready: true}
		for i, err := range errs {
			if err != nil {
				if rep.NotReady == nil {
					rep.NotReady = map[string]string{}
				}
				rep.Ready = false
				rep.NotReady[checks[i].Name] = err.Error()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !rep.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
}
