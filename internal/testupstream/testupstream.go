// Package testupstream is a small MCP server with tools that exercise a
// proxy: echo, sleep (observing cancellation), progress, tool errors, a crash,
// tool-list changes, plus a resource, a resource template, a prompt and
// logging, and optionally demo tools, an audit probe and the fixtures of the
// official MCP conformance suite's server scenarios. End-to-end tests
// and the benchmark run it as cmd/test-upstream.
package testupstream

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Clock is the part of a clock the timed tools need.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

// Options configure a Server. Zero fields take the defaults noted.
type Options struct {
	Name   string         // server name reported by initialize and whoami; default "test-upstream"
	Stderr io.Writer      // where cancellations are reported; default io.Discard
	Exit   func(code int) // called by the crash tool; must not return in production (os.Exit)
	Clock  Clock          // drives sleep and progress delays; required
}

// CrashExitCode is the status the crash tool exits with.
const CrashExitCode = 3

// Server is the test upstream.
type Server struct {
	mcp       *server.MCPServer
	opts      Options
	cancelled atomic.Int64
}

// New builds the server and registers its tools, resources and prompts.
func New(opts Options) *Server {
	if opts.Name == "" {
		opts.Name = "test-upstream"
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	s := &Server{opts: opts}
	s.mcp = server.NewMCPServer(opts.Name, "1.0.0",
		server.WithToolCapabilities(true),
		server.WithResourceCapabilities(true, true),
		server.WithPromptCapabilities(true),
		server.WithLogging(),
		server.WithCompletions(),
		server.WithPromptCompletionProvider(nameCompleter{}),
		server.WithRecovery(),
	)
	s.addTools()
	s.addResources()
	s.addPrompts()
	return s
}

// MCP returns the underlying mcp-go server, to serve or to drive in-process.
func (s *Server) MCP() *server.MCPServer { return s.mcp }

// Cancellations reports how many sleep calls ended because their context was
// cancelled.
func (s *Server) Cancellations() int64 { return s.cancelled.Load() }

func (s *Server) addTools() {
	s.mcp.AddTool(mcp.NewTool("echo",
		mcp.WithDescription("Returns its text argument unchanged."),
		mcp.WithString("text", mcp.Required(), mcp.Description("Text to echo back")),
		mcp.WithTitleAnnotation("Echo"),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.echo)
	s.mcp.AddTool(mcp.NewTool("sleep",
		mcp.WithDescription("Waits ms milliseconds, or until the call is cancelled (which is counted and reported on stderr)."),
		mcp.WithNumber("ms", mcp.Required(), mcp.Description("How long to wait, in milliseconds")),
		mcp.WithString("marker", mcp.Description("Label written to stderr if the call is cancelled")),
		mcp.WithTitleAnnotation("Sleep"),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.sleep)
	s.mcp.AddTool(mcp.NewTool("cancellations",
		mcp.WithDescription("Returns how many sleep calls have been cancelled so far, as a decimal number."),
		mcp.WithTitleAnnotation("Cancellation count"),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.cancellations)
	s.mcp.AddTool(mcp.NewTool("progress",
		mcp.WithDescription("Sends steps progress notifications (with the request's progress token), delay_ms apart, then returns."),
		mcp.WithNumber("steps", mcp.Required(), mcp.Description("Number of progress notifications")),
		mcp.WithNumber("delay_ms", mcp.Description("Wait before each notification, in milliseconds")),
		mcp.WithTitleAnnotation("Progress"),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.progress)
	s.mcp.AddTool(mcp.NewTool("fail",
		mcp.WithDescription("Returns a tool error (isError: true) carrying message."),
		mcp.WithString("message", mcp.Required(), mcp.Description("Error text")),
		mcp.WithTitleAnnotation("Fail"),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.fail)
	s.mcp.AddTool(mcp.NewTool("crash",
		mcp.WithDescription("Exits the server process mid-call, without answering."),
		mcp.WithTitleAnnotation("Crash"),
		mcp.WithReadOnlyHintAnnotation(false),
		mcp.WithDestructiveHintAnnotation(true),
		mcp.WithIdempotentHintAnnotation(false),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.crash)
	s.mcp.AddTool(mcp.NewTool("add_tool",
		mcp.WithDescription("Adds a tool called name (which answers \"<name> called\") and notifies tools/list_changed."),
		mcp.WithString("name", mcp.Required(), mcp.Description("Name of the tool to add")),
		mcp.WithTitleAnnotation("Add tool"),
		mcp.WithReadOnlyHintAnnotation(false),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.addTool)
	s.mcp.AddTool(mcp.NewTool("remove_tool",
		mcp.WithDescription("Removes the tool called name and notifies tools/list_changed."),
		mcp.WithString("name", mcp.Required(), mcp.Description("Name of the tool to remove")),
		mcp.WithTitleAnnotation("Remove tool"),
		mcp.WithReadOnlyHintAnnotation(false),
		mcp.WithDestructiveHintAnnotation(true),
		mcp.WithIdempotentHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.removeTool)
	s.mcp.AddTool(mcp.NewTool("whoami",
		mcp.WithDescription("Returns this server's name."),
		mcp.WithTitleAnnotation("Who am I"),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithIdempotentHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.whoami)
	s.mcp.AddTool(mcp.NewTool("log",
		mcp.WithDescription("Sends message to the client as a notifications/message log entry at level (default info)."),
		mcp.WithString("message", mcp.Required(), mcp.Description("Log text")),
		mcp.WithString("level", mcp.Description("Log level, e.g. info or warning")),
		mcp.WithNumber("delay_ms", mcp.Description("Wait after the log entry before returning, in milliseconds")),
		mcp.WithTitleAnnotation("Log"),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), s.log)
}

func (s *Server) echo(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	text, err := req.RequireString("text")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	return mcp.NewToolResultText(text), nil
}

func (s *Server) sleep(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	ms, err := req.RequireFloat("ms")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	// Tests wait for this line to know the call has arrived before they
	// cancel it.
	wake := s.opts.Clock.After(time.Duration(ms * float64(time.Millisecond)))
	fmt.Fprintf(s.opts.Stderr, "started sleep %s\n", req.GetString("marker", "-"))
	select {
	case <-wake:
		return mcp.NewToolResultText(fmt.Sprintf("slept %g ms", ms)), nil
	case <-ctx.Done():
		s.cancelled.Add(1)
		fmt.Fprintf(s.opts.Stderr, "cancelled sleep %s\n", req.GetString("marker", "-"))
		return nil, ctx.Err()
	}
}

func (s *Server) cancellations(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return mcp.NewToolResultText(fmt.Sprint(s.Cancellations())), nil
}

func (s *Server) progress(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	steps := req.GetInt("steps", 0)
	delay := time.Duration(req.GetFloat("delay_ms", 0) * float64(time.Millisecond))
	var token mcp.ProgressToken
	if req.Params.Meta != nil {
		token = req.Params.Meta.ProgressToken
	}
	// Each step waits, then reports. mcp-go writes notifications from a
	// goroutine of their own, so without a last wait the final report could
	// leave after the result, where a client's request stream has ended.
	for i := 1; i <= steps+1; i++ {
		select {
		case <-s.opts.Clock.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if token == nil || i > steps {
			continue
		}
		err := s.mcp.SendNotificationToClient(ctx, string(mcp.MethodNotificationProgress), map[string]any{
			"progressToken": token,
			"progress":      i,
			"total":         steps,
			"message":       fmt.Sprintf("step %d of %d", i, steps),
		})
		if err != nil {
			return nil, fmt.Errorf("send progress: %w", err)
		}
	}
	return mcp.NewToolResultText(fmt.Sprintf("done %d steps", steps)), nil
}

func (s *Server) fail(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return mcp.NewToolResultError(req.GetString("message", "failed")), nil
}

func (s *Server) crash(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	s.opts.Exit(CrashExitCode)
	return mcp.NewToolResultError("crash: exit returned"), nil
}

func (s *Server) addTool(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	name, err := req.RequireString("name")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	s.mcp.AddTool(mcp.NewTool(name,
		mcp.WithDescription("Added at runtime by add_tool."),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
	), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(name + " called"), nil
	})
	return mcp.NewToolResultText("added " + name), nil
}

func (s *Server) removeTool(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	name, err := req.RequireString("name")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	if s.mcp.GetTool(name) == nil {
		return mcp.NewToolResultError("no tool " + name), nil
	}
	s.mcp.DeleteTools(name)
	return mcp.NewToolResultText("removed " + name), nil
}

func (s *Server) whoami(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return mcp.NewToolResultText(s.opts.Name), nil
}

func (s *Server) log(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	msg, err := req.RequireString("message")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	level := mcp.LoggingLevel(req.GetString("level", string(mcp.LoggingLevelInfo)))
	if err := s.mcp.SendLogMessageToClient(ctx, mcp.NewLoggingMessageNotification(level, s.opts.Name, msg)); err != nil {
		return nil, fmt.Errorf("send log: %w", err)
	}
	// As progress's last wait: a test that counts what the client hears
	// gives the entry time to be written before the result.
	if err := s.pause(ctx, time.Duration(req.GetFloat("delay_ms", 0)*float64(time.Millisecond))); err != nil {
		return nil, err
	}
	return mcp.NewToolResultText("logged"), nil
}

// HelloURI is the static resource; GreetingTemplate is the resource template.
const (
	HelloURI         = "test://hello"
	HelloText        = "hello from the test upstream"
	GreetingTemplate = "test://greeting/{name}"
)

func (s *Server) addResources() {
	s.mcp.AddResource(mcp.NewResource(HelloURI, "hello",
		mcp.WithResourceDescription("A static greeting"),
		mcp.WithMIMEType("text/plain"),
	), func(context.Context, mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: HelloURI, MIMEType: "text/plain", Text: HelloText}}, nil
	})
	s.mcp.AddResourceTemplate(mcp.NewResourceTemplate(GreetingTemplate, "greeting",
		mcp.WithTemplateDescription("A greeting for name"),
		mcp.WithTemplateMIMEType("text/plain"),
	), func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		name := strings.TrimPrefix(req.Params.URI, "test://greeting/")
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "text/plain", Text: "hello, " + name}}, nil
	})
}

func (s *Server) addPrompts() {
	s.mcp.AddPrompt(mcp.NewPrompt("greet",
		mcp.WithPromptDescription("Greets someone by name"),
		mcp.WithArgument("name", mcp.RequiredArgument(), mcp.ArgumentDescription("Who to greet")),
	), func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		name := req.Params.Arguments["name"]
		return mcp.NewGetPromptResult("A greeting", []mcp.PromptMessage{
			mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("Please greet "+name+".")),
		}), nil
	})
}

// completionNames are offered for the greet prompt's name argument.
var completionNames = []string{"alice", "albert", "bob"}

type nameCompleter struct{}

func (nameCompleter) CompletePromptArgument(_ context.Context, prompt string, arg mcp.CompleteArgument, _ mcp.CompleteContext) (*mcp.Completion, error) {
	values := []string{}
	if prompt == "greet" && arg.Name == "name" {
		for _, n := range completionNames {
			if strings.HasPrefix(n, arg.Value) {
				values = append(values, n)
			}
		}
	}
	return &mcp.Completion{Values: values}, nil
}
