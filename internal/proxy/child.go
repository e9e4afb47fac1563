package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// wireMsg is every JSON-RPC message shape at once, so that one decode tells
// a response from a request or a notification and keeps the payload raw.
type wireMsg struct {
	ID     json.RawMessage          `json:"id"`
	Method string                   `json:"method"`
	Params json.RawMessage          `json:"params"`
	Result json.RawMessage          `json:"result"`
	Error  *mcp.JSONRPCErrorDetails `json:"error"`
}

// reply is what a pending request receives.
type reply struct {
	result json.RawMessage
	err    error
}

// childConn speaks newline-delimited JSON-RPC with a child process over its
// stdin and stdout. It owns the process: Close stops it with SIGTERM to its
// process group, then SIGKILL after a grace period.
type childConn struct {
	name     string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	grace    time.Duration
	onNotify func(method string, params json.RawMessage)
	// onRequest answers a request of the child; it must not block.
	onRequest func(c *childConn, id json.RawMessage, method string, params json.RawMessage)

	wmu sync.Mutex // one frame at a time on stdin

	mu      sync.Mutex
	pending map[string]chan reply // by the id's JSON text

	done    chan struct{} // closed once stdout ended and the process was reaped
	exitErr error         // why it ended; written before done closes
	closing sync.Once
}

// startChild starts argv as a child process whose stderr lines go to stderr
// prefixed with the upstream's name.
func startChild(name string, argv []string, env []string, stderr io.Writer, grace time.Duration, onNotify func(string, json.RawMessage), onRequest func(*childConn, json.RawMessage, string, json.RawMessage)) (*childConn, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &prefixWriter{prefix: "[" + name + "] ", w: stderr}
	// Its own process group, so that shutdown reaches what a launcher such
	// as npx starts in turn, and a terminal's Ctrl-C reaches it only via us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild holding stderr open must not keep Wait from returning.
	cmd.WaitDelay = grace
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childConn{
		name:      name,
		cmd:       cmd,
		stdin:     stdin,
		grace:     grace,
		onNotify:  onNotify,
		onRequest: onRequest,
		pending:   make(map[string]chan reply),
		done:      make(chan struct{}),
	}
	go c.read(stdout)
	return c, nil
}

func (c *childConn) read(stdout io.Reader) {
	r := bufio.NewReaderSize(stdout, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			c.dispatch(line)
		}
		if err != nil {
			break
		}
	}
	werr := c.cmd.Wait()
	if werr == nil {
		werr = errors.New("exited")
	}
	c.exitErr = fmt.Errorf("process ended: %w", werr)
	close(c.done)
	c.mu.Lock()
	for id, ch := range c.pending {
		ch <- reply{err: c.exitErr}
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

func (c *childConn) dispatch(line []byte) {
	var m wireMsg
	if err := json.Unmarshal(line, &m); err != nil {
		return // not JSON-RPC: a server that logs to stdout; nothing to route
	}
	switch {
	case m.Method != "" && len(m.ID) == 0:
		c.onNotify(m.Method, m.Params)
	case m.Method != "":
		c.onRequest(c, m.ID, m.Method, m.Params)
	default:
		c.mu.Lock()
		ch, ok := c.pending[string(m.ID)]
		delete(c.pending, string(m.ID))
		c.mu.Unlock()
		if !ok {
			return
		}
		if m.Error != nil {
			ch <- reply{err: rpcErrorFrom(m.Error)}
			return
		}
		ch <- reply{result: m.Result}
	}
}

func (c *childConn) write(b []byte) error {
	c.wmu.Lock()
	_, err := c.stdin.Write(b)
	c.wmu.Unlock()
	return err
}

func (c *childConn) call(ctx context.Context, id int64, method string, params json.RawMessage) (json.RawMessage, error) {
	return c.callRaw(ctx, strconv.AppendInt(nil, id, 10), method, params)
}

// callRaw sends one request whose id is the JSON text id and waits for its
// answer.
func (c *childConn) callRaw(ctx context.Context, id []byte, method string, params json.RawMessage) (json.RawMessage, error) {
	b := make([]byte, 0, len(params)+len(method)+len(id)+48)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"method":"`...)
	b = append(b, method...)
	b = append(b, '"')
	if len(params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	b = append(b, "}\n"...)

	ch := make(chan reply, 1)
	key := string(id)
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return nil, c.exitErr
	default:
	}
	c.pending[key] = ch
	c.mu.Unlock()

	if err := c.write(b); err != nil {
		c.forget(key)
		select {
		case <-c.done:
			return nil, c.exitErr
		default:
			return nil, fmt.Errorf("upstream %s: write: %w", c.name, err)
		}
	}
	select {
	case r := <-ch:
		return r.result, r.err
	case <-ctx.Done():
		c.forget(key)
		return nil, ctx.Err()
	}
}

func (c *childConn) forget(key string) {
	c.mu.Lock()
	delete(c.pending, key)
	c.mu.Unlock()
}

func (c *childConn) notify(method string, params json.RawMessage) error {
	b := fmt.Appendf(nil, `{"jsonrpc":"2.0","method":%q`, method)
	if len(params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return c.write(append(b, "}\n"...))
}

func (c *childConn) closed() <-chan struct{} { return c.done }

func (c *childConn) Err() error {
	select {
	case <-c.done:
		return c.exitErr
	default:
		return nil
	}
}

// Close stops the child: stdin closed and SIGTERM to its process group, then
// SIGKILL once the grace period is over.
func (c *childConn) Close() error {
	c.closing.Do(func() {
		_ = c.stdin.Close()
		pgid := -c.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		t := time.NewTimer(c.grace)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-c.done
		}
	})
	return nil
}

// The methods below let mcp-go's client drive the handshake and the typed
// list/read/get requests over this connection; tools/call bypasses them.

func (c *childConn) Start(context.Context) error { return nil }

func (c *childConn) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	id, err := json.Marshal(req.ID)
	if err != nil {
		return nil, err
	}
	var params json.RawMessage
	if req.Params != nil {
		if params, err = json.Marshal(req.Params); err != nil {
			return nil, err
		}
	}
	res, err := c.callRaw(ctx, id, req.Method, params)
	if err != nil {
		var rpc *RPCError
		if errors.As(err, &rpc) {
			return &transport.JSONRPCResponse{JSONRPC: mcp.JSONRPC_VERSION, ID: req.ID, Error: &mcp.JSONRPCErrorDetails{Code: rpc.Code, Message: rpc.Message}}, nil
		}
		return nil, err
	}
	return &transport.JSONRPCResponse{JSONRPC: mcp.JSONRPC_VERSION, ID: req.ID, Result: res}, nil
}

func (c *childConn) SendNotification(_ context.Context, n mcp.JSONRPCNotification) error {
	params, err := json.Marshal(n.Params)
	if err != nil {
		return err
	}
	return c.notify(n.Method, params)
}

// SetNotificationHandler is a no-op: notifications go, raw, to the handler
// given to startChild.
func (c *childConn) SetNotificationHandler(func(mcp.JSONRPCNotification)) {}

func (c *childConn) GetSessionId() string { return "" }

func rpcErrorFrom(d *mcp.JSONRPCErrorDetails) *RPCError {
	e := &RPCError{Code: d.Code, Message: d.Message}
	if d.Data != nil {
		e.Data, _ = json.Marshal(d.Data)
	}
	return e
}

// prefixWriter writes each line it is given to w with a prefix, keeping a
// partial last line until it is complete.
type prefixWriter struct {
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := make([]byte, 0, len(p.prefix)+i+1)
		line = append(line, p.prefix...)
		line = append(line, p.buf[:i+1]...)
		if _, err := p.w.Write(line); err != nil {
			return len(b), nil // our stderr is gone; the child must not block on it
		}
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 4096 { // a runaway line without newline
		_, _ = p.w.Write(append(append([]byte(p.prefix), p.buf...), '\n'))
		p.buf = p.buf[:0]
	}
	return len(b), nil
}
