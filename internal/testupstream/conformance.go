package testupstream

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The official MCP conformance suite (@modelcontextprotocol/conformance)
// names the tools, resources and prompts its server scenarios call, and
// says what each must answer; AddConformance offers them so that the suite
// can run against this server directly and through the gate. Each fixture
// below is the suite's requirement, in the suite's names.

// Small valid media: a 1x1 PNG and an empty 8 kHz mono WAV.
const (
	conformancePNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
	conformanceWAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="
)

// conformanceSchema is json-schema-2020-12's tool schema: the suite checks
// that $schema, $defs and additionalProperties reach the client unchanged.
const conformanceSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "$defs": {
    "address": {
      "type": "object",
      "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
    }
  },
  "properties": {
    "name": {"type": "string"},
    "address": {"$ref": "#/$defs/address"}
  },
  "additionalProperties": false
}`

// notificationGap is the pause the suite asks for between the log and
// progress notifications of one call. The tools pause longer, lastGap,
// after the last one: mcp-go's Streamable HTTP server drops a notification
// its forwarder has taken but not yet written when the result is written
// (mark3labs/mcp-go#969), and may write a notification on the session's
// GET stream, which a client reads apart from the call's own stream and
// may read after the result, when the call's progress is no longer
// listened for; so a notification sent shortly before returning can be
// lost, and the suite then fails the scenario directly, with or without
// the gate. 50 ms after the last one lost one in about 30 suite runs on a
// loaded 2-core machine.
const (
	notificationGap = 50 * time.Millisecond
	lastGap         = 500 * time.Millisecond
)

// AddConformance registers the conformance suite's server fixtures and
// declares the capabilities they need (sampling, elicitation).
func (s *Server) AddConformance() {
	s.mcp.EnableSampling()
	server.WithElicitation()(s.mcp)
	s.addConformanceTools()
	s.addConformanceResources()
	s.addConformancePrompts()
}

func (s *Server) addConformanceTools() {
	constant := func(name, description string, result *mcp.CallToolResult) {
		s.mcp.AddTool(mcp.NewTool(name, mcp.WithDescription(description)),
			func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { return result, nil })
	}
	constant("test_simple_text", "Returns one text content.",
		mcp.NewToolResultText("This is a simple text response for testing."))
	constant("test_image_content", "Returns one image content.",
		&mcp.CallToolResult{Content: []mcp.Content{mcp.NewImageContent(conformancePNG, "image/png")}})
	constant("test_audio_content", "Returns one audio content.",
		&mcp.CallToolResult{Content: []mcp.Content{mcp.NewAudioContent(conformanceWAV, "audio/wav")}})
	constant("test_embedded_resource", "Returns one embedded text resource.",
		&mcp.CallToolResult{Content: []mcp.Content{mcp.NewEmbeddedResource(mcp.TextResourceContents{
			URI: "test://embedded-resource", MIMEType: "text/plain", Text: "This is an embedded resource content.",
		})}})
	constant("test_multiple_content_types", "Returns text, an image and an embedded resource.",
		&mcp.CallToolResult{Content: []mcp.Content{
			mcp.NewTextContent("Multiple content types test:"),
			mcp.NewImageContent(conformancePNG, "image/png"),
			mcp.NewEmbeddedResource(mcp.TextResourceContents{
				URI: "test://mixed-content-resource", MIMEType: "application/json", Text: `{"test":"data","value":123}`,
			}),
		}})
	constant("test_error_handling", "Returns a tool error.",
		mcp.NewToolResultError("This tool intentionally returns an error for testing"))
	s.mcp.AddTool(mcp.NewToolWithRawSchema("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features",
		json.RawMessage(conformanceSchema)),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(fmt.Sprintf("received %v", req.GetArguments())), nil
		})
	s.mcp.AddTool(mcp.NewTool("test_tool_with_logging",
		mcp.WithDescription("Sends three info log notifications, 50 ms apart, then returns.")), s.conformanceLogging)
	s.mcp.AddTool(mcp.NewTool("test_tool_with_progress",
		mcp.WithDescription("Reports progress 0, 50 and 100 of 100, 50 ms apart, then returns.")), s.conformanceProgress)
	s.mcp.AddTool(mcp.NewTool("test_sampling",
		mcp.WithDescription("Asks the client to sample a reply to prompt."),
		mcp.WithString("prompt", mcp.Required(), mcp.Description("What to ask the model"))), s.conformanceSampling)
	s.mcp.AddTool(mcp.NewTool("test_elicitation",
		mcp.WithDescription("Asks the user for a username and an email."),
		mcp.WithString("message", mcp.Required(), mcp.Description("What to tell the user"))),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return s.elicit(ctx, req.GetString("message", ""), map[string]any{
				"type": "object",
				"properties": map[string]any{
					"username": map[string]any{"type": "string", "description": "User's response"},
					"email":    map[string]any{"type": "string", "description": "User's email address"},
				},
				"required": []string{"username", "email"},
			})
		})
	s.mcp.AddTool(mcp.NewTool("test_elicitation_sep1034_defaults",
		mcp.WithDescription("Asks the user for values of every primitive type, each with a default (SEP-1034).")),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return s.elicit(ctx, "Provide your information", map[string]any{
				"type": "object",
				"properties": map[string]any{
					"name":     map[string]any{"type": "string", "default": "John Doe"},
					"age":      map[string]any{"type": "integer", "default": 30},
					"score":    map[string]any{"type": "number", "default": 95.5},
					"status":   map[string]any{"type": "string", "enum": []string{"active", "inactive", "pending"}, "default": "active"},
					"verified": map[string]any{"type": "boolean", "default": true},
				},
			})
		})
	titled := []any{map[string]any{"const": "value1", "title": "First"}, map[string]any{"const": "value2", "title": "Second"}}
	s.mcp.AddTool(mcp.NewTool("test_elicitation_sep1330_enums",
		mcp.WithDescription("Asks the user to choose in each of the five enum forms (SEP-1330).")),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return s.elicit(ctx, "Choose", map[string]any{
				"type": "object",
				"properties": map[string]any{
					"untitledSingle": map[string]any{"type": "string", "enum": []string{"option1", "option2"}},
					"titledSingle":   map[string]any{"type": "string", "oneOf": titled},
					"legacyEnum":     map[string]any{"type": "string", "enum": []string{"opt1", "opt2"}, "enumNames": []string{"One", "Two"}},
					"untitledMulti":  map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": []string{"option1", "option2"}}},
					"titledMulti":    map[string]any{"type": "array", "items": map[string]any{"anyOf": titled}},
				},
			})
		})
}

func (s *Server) conformanceLogging(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	for _, msg := range []string{"Tool execution started", "Tool processing data", "Tool execution completed"} {
		if err := s.mcp.SendLogMessageToClient(ctx, mcp.NewLoggingMessageNotification(mcp.LoggingLevelInfo, s.opts.Name, msg)); err != nil {
			return nil, fmt.Errorf("send log: %w", err)
		}
		if err := s.pause(ctx, notificationGap); err != nil {
			return nil, err
		}
	}
	if err := s.pause(ctx, lastGap-notificationGap); err != nil {
		return nil, err
	}
	return mcp.NewToolResultText("logged 3 messages"), nil
}

func (s *Server) conformanceProgress(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var token mcp.ProgressToken
	if req.Params.Meta != nil {
		token = req.Params.Meta.ProgressToken
	}
	for _, progress := range []int{0, 50, 100} {
		if token != nil {
			err := s.mcp.SendNotificationToClient(ctx, string(mcp.MethodNotificationProgress), map[string]any{
				"progressToken": token, "progress": progress, "total": 100,
			})
			if err != nil {
				return nil, fmt.Errorf("send progress: %w", err)
			}
		}
		if err := s.pause(ctx, notificationGap); err != nil {
			return nil, err
		}
	}
	if err := s.pause(ctx, lastGap-notificationGap); err != nil {
		return nil, err
	}
	return mcp.NewToolResultText("progress 100 of 100"), nil
}

func (s *Server) pause(ctx context.Context, d time.Duration) error {
	select {
	case <-s.opts.Clock.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// conformanceSampling and elicit fail the call with a JSON-RPC error, not a
// tool error, when the client's answer does not come back: the suite's
// scenarios fail on the former but count any tool result with content as a
// pass.
func (s *Server) conformanceSampling(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	//lint:ignore SA1019 the suite's sampling scenario exercises this 2025-11-25 feature
	res, err := s.mcp.RequestSampling(ctx, mcp.CreateMessageRequest{CreateMessageParams: mcp.CreateMessageParams{
		Messages:  []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent(req.GetString("prompt", ""))}},
		MaxTokens: 100,
	}})
	if err != nil {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	text, _ := res.Content.(mcp.TextContent)
	return mcp.NewToolResultText("LLM response: " + text.Text), nil
}

func (s *Server) elicit(ctx context.Context, message string, schema map[string]any) (*mcp.CallToolResult, error) {
	res, err := s.mcp.RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{Message: message, RequestedSchema: schema}})
	if err != nil {
		return nil, fmt.Errorf("elicitation: %w", err)
	}
	content, _ := json.Marshal(res.Content)
	return mcp.NewToolResultText(fmt.Sprintf("Elicitation completed: action=%s, content=%s", res.Action, content)), nil
}

// conformanceWatched is the resource the suite subscribes to.
const conformanceWatched = "test://watched-resource"

func (s *Server) addConformanceResources() {
	text := func(uri, body string) server.ResourceHandlerFunc {
		return func(context.Context, mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: uri, MIMEType: "text/plain", Text: body}}, nil
		}
	}
	s.mcp.AddResource(mcp.NewResource("test://static-text", "static-text",
		mcp.WithResourceDescription("A static text resource"), mcp.WithMIMEType("text/plain")),
		text("test://static-text", "This is the content of the static text resource."))
	s.mcp.AddResource(mcp.NewResource(conformanceWatched, "watched-resource",
		mcp.WithResourceDescription("A resource to subscribe to"), mcp.WithMIMEType("text/plain")),
		text(conformanceWatched, "Watched resource content."))
	s.mcp.AddResource(mcp.NewResource("test://static-binary", "static-binary",
		mcp.WithResourceDescription("A static binary resource (a 1x1 PNG)"), mcp.WithMIMEType("image/png")),
		func(context.Context, mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			return []mcp.ResourceContents{mcp.BlobResourceContents{URI: "test://static-binary", MIMEType: "image/png", Blob: conformancePNG}}, nil
		})
	s.mcp.AddResourceTemplate(mcp.NewResourceTemplate("test://template/{id}/data", "template",
		mcp.WithTemplateDescription("Data for id"), mcp.WithTemplateMIMEType("application/json")),
		func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			id := strings.TrimSuffix(strings.TrimPrefix(req.Params.URI, "test://template/"), "/data")
			body, _ := json.Marshal(map[string]any{"id": id, "templateTest": true, "data": "Data for ID: " + id})
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "application/json", Text: string(body)}}, nil
		})
}

func (s *Server) addConformancePrompts() {
	user := func(c mcp.Content) mcp.PromptMessage { return mcp.NewPromptMessage(mcp.RoleUser, c) }
	s.mcp.AddPrompt(mcp.NewPrompt("test_simple_prompt", mcp.WithPromptDescription("A prompt without arguments")),
		func(context.Context, mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return mcp.NewGetPromptResult("Simple", []mcp.PromptMessage{user(mcp.NewTextContent("This is a simple prompt for testing."))}), nil
		})
	s.mcp.AddPrompt(mcp.NewPrompt("test_prompt_with_arguments", mcp.WithPromptDescription("A prompt with two required arguments"),
		mcp.WithArgument("arg1", mcp.RequiredArgument(), mcp.ArgumentDescription("First argument")),
		mcp.WithArgument("arg2", mcp.RequiredArgument(), mcp.ArgumentDescription("Second argument"))),
		func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			a := req.Params.Arguments
			return mcp.NewGetPromptResult("With arguments", []mcp.PromptMessage{
				user(mcp.NewTextContent(fmt.Sprintf("Prompt with arguments: arg1=%q, arg2=%q", a["arg1"], a["arg2"]))),
			}), nil
		})
	s.mcp.AddPrompt(mcp.NewPrompt("test_prompt_with_embedded_resource", mcp.WithPromptDescription("A prompt embedding the resource at resourceUri"),
		mcp.WithArgument("resourceUri", mcp.RequiredArgument(), mcp.ArgumentDescription("URI of the resource to embed"))),
		func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return mcp.NewGetPromptResult("With a resource", []mcp.PromptMessage{
				user(mcp.NewEmbeddedResource(mcp.TextResourceContents{URI: req.Params.Arguments["resourceUri"], MIMEType: "text/plain", Text: "Embedded resource content for testing."})),
				user(mcp.NewTextContent("Please process the embedded resource above.")),
			}), nil
		})
	s.mcp.AddPrompt(mcp.NewPrompt("test_prompt_with_image", mcp.WithPromptDescription("A prompt with an image")),
		func(context.Context, mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return mcp.NewGetPromptResult("With an image", []mcp.PromptMessage{
				user(mcp.NewImageContent(conformancePNG, "image/png")),
				user(mcp.NewTextContent("Please analyze the image above.")),
			}), nil
		})
}
