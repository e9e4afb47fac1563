package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// loadGate is a gate with small bounds for the load test: sessions expire
// after idle, bodies are limited to limit bytes and must arrive within 1s.
func loadGate(t *testing.T, idle time.Duration, limit int) replica {
	t.Helper()
	g := ServeGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--session-idle", idle.String(),
		"--max-message-bytes", fmt.Sprint(limit), "--body-timeout", "1s", "--metrics-listen", "127.0.0.1:0", "--"}, Upstream("test-upstream")...)...)
	m := metricsAt.FindStringSubmatch(g.Stderr.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", g.Stderr)
	}
	return replica{Gate: g, ops: strings.TrimSuffix(m[1], "/metrics")}
}

// gcCycles is how many collections the gate has finished.
func gcCycles(fams map[string]*dto.MetricFamily) uint64 {
	for _, m := range fams["go_gc_duration_seconds"].GetMetric() {
		return m.GetSummary().GetSampleCount()
	}
	return 0
}

// liveHeap is the heap the gate's collections found live, read once the
// gate has collected at least twice since liveHeap was called (so the
// figure reflects the gate's state now, not its garbage), and the least of
// the next ten collections' figures: what is in use during one collection
// (a scrape's gathered families, a request's buffers) adds up to a MiB to
// that one figure, never to all of them, so the floor is what the gate
// keeps. The test makes the garbage that brings collections on: refused
// oversize bodies, which allocate up to the body limit each and keep
// nothing.
func (r replica) liveHeap(t *testing.T, limit int) float64 {
	t.Helper()
	start := gcCycles(r.metrics(t))
	least := -1.0
	EventuallyWithin(t, "twelve garbage collections in the gate", 2*time.Minute, func() error {
		fams := r.metrics(t)
		n := gcCycles(fams)
		if n >= start+2 {
			v, ok := value(fams["go_gc_heap_live_bytes"], nil)
			if !ok {
				t.Fatal("no go_gc_heap_live_bytes in /metrics")
			}
			if least < 0 || v < least {
				least = v
			}
		}
		if n >= start+12 {
			return nil
		}
		for range 16 {
			r.oversize(t, limit+1024, limit+1024)
		}
		return fmt.Errorf("%d collections since the start, want 12", n-start)
	})
	return least
}

// oversize sends a POST declaring size bytes and writes up to send of
// them, and returns the status of the answer; 0 when the gate closed the
// connection before its answer could be read (it stopped reading at its
// limit, and the unread rest of the body reset the connection).
func (r replica) oversize(t *testing.T, size, send int) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(r.URL, "/mcp"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	go func() {
		fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n", size)
		body := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("a", 32<<10)
		for sent := 0; sent < send; sent += len(body) {
			if _, err := io.WriteString(conn, body); err != nil {
				return // the gate stopped reading: what it should do
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAbandonedSessionsAreFreed is the HTTP front's load test, on
// loopback and bounded: 2,000 sessions opened and abandoned are expired
// after --session-idle, and the gate's live heap returns to where the
// previous round left it, give or take 512 bytes a session; oversize
// bodies (32 at once declaring 8 MiB each) and stalled bodies are refused
// (413, 408) without the gate's memory growing by anything like their size.
func TestAbandonedSessionsAreFreed(t *testing.T) {
	const (
		sessions = 2000
		workers  = 16
		idle     = 5 * time.Second
		limit    = 64 << 10
		big      = 8 << 20
		parallel = 32
	)
	g := loadGate(t, idle, limit)
	// Warm up what a first session allocates once (mcp-go's and the
	// upstream's state), then take the starting figures.
	last := g.abandonSessions(t, 1, 1)
	base := g.liveHeap(t, limit)
	peak0 := peakRSS(t, g.Cmd.Process.Pid)

	// Oversize and stalled bodies, all at once. An oversize body the
	// loaded machine sends slowly may meet the body timeout before the
	// limit: 408 is as good a refusal as 413 then.
	var wg sync.WaitGroup
	over, slow := make(chan int, parallel), make(chan int, parallel)
	for range parallel {
		wg.Go(func() { over <- g.oversize(t, big, big) })
		wg.Go(func() { slow <- g.stalled(t) })
	}
	wg.Wait()
	close(over)
	close(slow)
	refused := 0
	for s := range over {
		switch s {
		case http.StatusRequestEntityTooLarge:
			refused++
		case http.StatusRequestTimeout, 0:
		default:
			t.Errorf("an oversize body answered %d", s)
		}
	}
	if refused == 0 {
		t.Errorf("no oversize body was answered 413")
	}
	for s := range slow {
		if s != http.StatusRequestTimeout {
			t.Errorf("a stalled body answered %d, want 408", s)
		}
	}
	grew := peakRSS(t, g.Cmd.Process.Pid) - peak0
	t.Logf("%d oversize bodies of %d MiB and %d stalled ones: peak resident memory grew %d KiB", parallel, big>>20, parallel, grew>>10)
	if grew > parallel*big/4 {
		t.Errorf("the gate's peak memory grew %d MiB for %d MiB of oversize bodies", grew>>20, parallel*big>>20)
	}

	// Sessions opened and abandoned, twice. Go's maps keep the room they
	// grew to, so the first round sizes the gate's session tables (at
	// most 512 bytes a session may stay for that); the second must then
	// keep no more than 512 bytes a session beyond what the first kept. A
	// bound per session, not a share of a heap of 1.5 MiB: the floor moves
	// by up to 0.6 MiB from one round to the next either way (buffers
	// sized by the round's peak), and the smallest thing a leaked session
	// could keep, its notification queue (100 entries), is ten times the bound.
	var after []float64
	for round := range 2 {
		last = g.abandonSessions(t, sessions, workers)
		peak := g.liveHeap(t, limit)
		held, _ := value(g.metrics(t)["mcp_gate_sessions"], nil)
		EventuallyWithin(t, "every abandoned session expired", 2*time.Minute, func() error {
			if n, _ := value(g.metrics(t)["mcp_gate_sessions"], nil); n > 0 {
				return fmt.Errorf("%v sessions still held", n)
			}
			return nil
		})
		after = append(after, g.liveHeap(t, limit))
		t.Logf("round %d: live heap %.2f MiB with %v of %d sessions held, %.2f MiB once they expired (%.2f MiB at the start)",
			round+1, peak/(1<<20), held, sessions, after[round]/(1<<20), base/(1<<20))
	}
	if after[0] > base+sessions*512 {
		t.Errorf("live heap %.2f MiB after the first round of sessions expired, %.2f MiB at the start: more than 512 bytes kept a session", after[0]/(1<<20), base/(1<<20))
	}
	if after[1] > after[0]+sessions*512 {
		t.Errorf("live heap %.2f MiB after the second round of sessions expired, %.2f MiB after the first: more than 512 bytes a session kept", after[1]/(1<<20), after[0]/(1<<20))
	}
	if a := request(t, http.MethodPost, g.URL, "", last[0], `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); a.status != http.StatusNotFound {
		t.Errorf("an expired session answered %d, want 404", a.status)
	}
}

// abandonSessions opens n sessions, workers at a time (an initialize and a
// call each) and leaves them, and returns their ids.
func (r replica) abandonSessions(t *testing.T, n, workers int) []string {
	t.Helper()
	ids := make(chan string, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				a := request(t, http.MethodPost, r.URL, "", "", initializeBody)
				sid := a.header.Get("Mcp-Session-Id")
				if a.status != http.StatusOK || sid == "" {
					t.Errorf("initialize: %d %s", a.status, a.body)
					continue
				}
				if a := request(t, http.MethodPost, r.URL, "", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); a.status != http.StatusOK {
					t.Errorf("tools/list in a new session: %d %s", a.status, a.body)
				}
				ids <- sid
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(ids)
	if t.Failed() {
		t.FailNow()
	}
	opened := map[string]bool{}
	var out []string
	for id := range ids {
		if !opened[id] {
			opened[id] = true
			out = append(out, id)
		}
	}
	if len(out) != n {
		t.Fatalf("%d distinct sessions, want %d", len(out), n)
	}
	return out
}

// stalled sends a POST's headers and the start of its body, then nothing,
// and returns the status of the answer.
func (r replica) stalled(t *testing.T) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(r.URL, "/mcp"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(conn, "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
