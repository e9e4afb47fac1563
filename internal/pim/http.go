package pim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// maxBody bounds every response body the client reads.
const maxBody = 1 << 20

// getRetries is how many times an idempotent GET is retried on a transport
// error, 429 or 5xx before the error reaches the caller.
const getRetries = 3

// markUnreachable wraps the transport so that a request that never got an
// HTTP answer is recognisable as ErrUnreachable (token errors are not),
// and tells observe (if set) of each answer's status.
type markUnreachable struct {
	next    policy.Transporter
	observe func(status int)
}

func (m markUnreachable) Do(req *http.Request) (*http.Response, error) {
	resp, err := m.next.Do(req)
	if m.observe != nil {
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		m.observe(status)
	}
	if err != nil && req.Context().Err() == nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrUnreachable, req.Method, req.URL.Path, err)
	}
	return resp, err
}

// Reachable reports whether Graph answers HTTP at all: an unauthenticated
// GET of its base URL, where any status (401 included) means the network
// path and TLS are fine. No token is asked for or sent.
func (c *Client) Reachable(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.transport.Do(req)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// retryPolicy retries GETs (idempotent) on transport errors, 429 and 5xx,
// waiting Retry-After when the server sends one, else the poll backoff.
// Other methods pass through untouched: the create POST must never be
// replayed blindly (see Client.create) and cancel is not retried either.
// It waits on the Client's Clock so tests need no real sleeps.
type retryPolicy struct{ c *Client }

func (p *retryPolicy) Do(req *policy.Request) (*http.Response, error) {
	if req.Raw().Method != http.MethodGet {
		return req.Next()
	}
	ctx := req.Raw().Context()
	backoff := p.c.poll
	for try := 0; ; try++ {
		resp, err := req.Clone(ctx).Next()
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, ctx.Err()
		}
		if try == getRetries || !retriable(resp, err) {
			return resp, err
		}
		delay := p.c.backoff(backoff)
		backoff = min(2*backoff, p.c.max)
		if resp != nil {
			if ra, ok := retryAfter(resp.Header.Get("Retry-After"), p.c.clock.Now()); ok {
				delay = ra
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
				// Waiting would outlive the caller: hand back the throttled
				// answer now so the error says why.
				return resp, nil
			}
			drain(resp)
		}
		p.c.log.Debug("pim: retrying Graph GET", "path", req.Raw().URL.Path, "delay", delay, "attempt", try+2)
		select {
		case <-p.c.clock.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func retriable(resp *http.Response, err error) bool {
	if err != nil {
		return errors.Is(err, ErrUnreachable)
	}
	return isThrottleStatus(resp.StatusCode) || resp.StatusCode >= 500
}

func isThrottleStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// retryAfter parses a Retry-After value: integer or fractional seconds, or
// an HTTP date (relative to now).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) || s > 24*3600 {
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// backoff applies ±20% jitter to d.
func (c *Client) backoff(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*c.jitter()))
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
}

// url joins an API path (which may carry a query) to the Graph base URL.
func (c *Client) url(pathAndQuery string) string {
	return c.base.String() + pathAndQuery
}

// service is which API a request goes to: each has its own base URL and
// its own tokens.
type service uint8

const (
	svcGraph service = iota
	svcARM
)

func (s service) String() string {
	if s == svcARM {
		return "Azure Resource Manager"
	}
	return "Microsoft Graph"
}

func (c *Client) baseOf(s service) *url.URL {
	if s == svcARM {
		return c.arm
	}
	return c.base
}

// send runs one Graph request through the pipeline and decodes a JSON
// answer into out (when non-nil). Non-2xx answers become *GraphError.
func (c *Client) send(ctx context.Context, method, rawURL string, body, out any) (http.Header, error) {
	return c.sendTo(ctx, svcGraph, method, rawURL, body, out)
}

// sendTo is send to either service.
func (c *Client) sendTo(ctx context.Context, svc service, method, rawURL string, body, out any) (http.Header, error) {
	req, err := runtime.NewRequest(ctx, method, rawURL)
	if err != nil {
		return nil, fmt.Errorf("pim: building %s request: %w", method, err)
	}
	// We read bodies ourselves, through a size limit.
	runtime.SkipBodyDownload(req)
	req.Raw().Header.Set("Accept", "application/json")
	if body != nil {
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			return nil, fmt.Errorf("pim: encoding request: %w", err)
		}
	}
	pl := c.pl
	if svc == svcARM {
		pl = c.armPl
	}
	resp, err := pl.Do(req)
	if err != nil && svc == svcARM && errors.Is(err, ErrUnreachable) {
		return nil, fmt.Errorf("%w: %w", errARMUnreachable, err)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s %s: %w", ErrUnreachable, method, req.Raw().URL.Path, err)
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("pim: %s %s: response larger than %d bytes", method, req.Raw().URL.Path, maxBody)
	}
	c.log.Debug("pim: "+svc.String()+" call", "method", method, "path", req.Raw().URL.Path, "status", resp.StatusCode,
		"requestId", requestID(resp.Header))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ge := newGraphError(resp, data, c.clock.Now())
		ge.ARM = svc == svcARM
		if ge.StatusCode == http.StatusForbidden && !ge.ARM {
			ge.Missing = c.missingPermissions(ctx, req.Raw().URL.Path)
		}
		return resp.Header, ge
	}
	if out != nil && resp.StatusCode != http.StatusNoContent && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("pim: decoding %s %s answer: %w", method, req.Raw().URL.Path, err)
		}
	}
	return resp.Header, nil
}

// requestID is the id the service gave the request, for Microsoft support:
// Graph's request-id, ARM's x-ms-request-id.
func requestID(h http.Header) string {
	if id := h.Get("request-id"); id != "" {
		return id
	}
	return h.Get("x-ms-request-id")
}

// list GETs every page of a Graph collection, following @odata.nextLink.
func list[T any](ctx context.Context, c *Client, pathAndQuery string) ([]T, error) {
	return pages[T](ctx, c, svcGraph, c.url(pathAndQuery))
}

// pages GETs every page of a collection of svc from first on, following
// Graph's @odata.nextLink or ARM's nextLink.
func pages[T any](ctx context.Context, c *Client, svc service, first string) ([]T, error) {
	var all []T
	next := first
	for n := 0; next != ""; n++ {
		if n == 1000 {
			return nil, fmt.Errorf("pim: %s: more than 1000 pages", first)
		}
		var page struct {
			Value     []T    `json:"value"`
			NextLink  string `json:"@odata.nextLink"` // Graph
			ARMNextLn string `json:"nextLink"`        // ARM
		}
		if _, err := c.sendTo(ctx, svc, http.MethodGet, next, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Value...)
		next = page.NextLink
		if svc == svcARM {
			next = page.ARMNextLn
		}
		if next != "" {
			if err := sameOrigin(c.baseOf(svc), next); err != nil {
				return nil, err
			}
		}
	}
	return all, nil
}

// sameOrigin refuses a next link that would send our token to another host.
func sameOrigin(base *url.URL, link string) error {
	u, err := url.Parse(link)
	if err != nil {
		return fmt.Errorf("pim: bad next page link: %w", err)
	}
	if u.Scheme != base.Scheme || u.Host != base.Host {
		return fmt.Errorf("pim: next page link %s is not on %s://%s; refusing to follow it", u.Redacted(), base.Scheme, base.Host)
	}
	return nil
}
