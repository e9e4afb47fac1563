package policy

import "testing"

// mistakeCases are slips that YAML and a loose reading would accept: each
// must be an error at the line and column of the slip.
var mistakeCases = []problemCase{
	{"tab in indentation", "version: 1\ntools:\n\ta: allow\n", []string{
		"p.yaml:3:1: tabs are not allowed in YAML; indent with spaces",
	}},
	{"tab after spaces", "version: 1\ntools:\n  a: allow\n  \tb: deny\n", []string{
		"p.yaml:4:3: tabs are not allowed in YAML; indent with spaces",
	}},
	{"tab in a nested mapping", withApprovals + "  a:\n    role: R\n  \tgrant: 5m\n", []string{
		"p.yaml:6:3: tabs are not allowed in YAML; indent with spaces",
	}},
	{"key indented too little", "version: 1\ntools:\n    a: allow\n  b: deny\n", []string{
		"p.yaml:4:3: YAML syntax: did not find expected key; check the indentation: the keys of one mapping, and the items of one list, must line up",
	}},
	{"key indented too far", "version: 1\ntools:\n  a: allow\n    b: deny\n", []string{
		`p.yaml:4:5: YAML syntax: mapping values are not allowed in this context; check the indentation, or quote a value that contains ": "`,
	}},
	{"list item indented too little", "version: 1\ntools:\n  a:\n    - allow\n   - deny\n", []string{
		"p.yaml:5:4: YAML syntax: did not find expected key; check the indentation: the keys of one mapping, and the items of one list, must line up",
	}},
	{"nested key indented too little", withApprovals + "  a:\n    role: R\n\n   # a comment\n   grant: 5m\n", []string{
		"p.yaml:8:4: YAML syntax: did not find expected key; check the indentation: the keys of one mapping, and the items of one list, must line up",
	}},
	{"top-level key indented", "version: 1\n tools:\n  a: allow\n", []string{
		`p.yaml:2:2: YAML syntax: mapping values are not allowed in this context; check the indentation, or quote a value that contains ": "`,
	}},
	{"unclosed flow list", "version: 1\ntools:\n  a: [allow\n  b: deny\n", []string{
		"p.yaml:3:6: YAML syntax: did not find expected ',' or ']'",
	}},
	{"required misspelt", withApprovals + "  a: {role: R, ticket: requried}\n  b: {role: R, justification: requird}\n  c: {role: R, justification: Required}\n  d: {role: R, ticket: \" REQUIRED \"}\n", []string{
		`p.yaml:4:24: tools["a"].ticket: unknown keyword "requried" (did you mean "required"?); write required, or a text of more than one word`,
		`p.yaml:5:31: tools["b"].justification: unknown keyword "requird" (did you mean "required"?); write required, or a text of more than one word`,
		`p.yaml:6:31: tools["c"].justification: unknown keyword "Required" (did you mean "required"?); write required, or a text of more than one word`,
		`p.yaml:7:24: tools["d"].ticket: unknown keyword "REQUIRED" (did you mean "required"?); write required, or a text of more than one word`,
	}},
	{"approvals justification misspelt", "version: 1\napprovals: {justification: reqired}\ntools: {a: allow}\n", []string{
		`p.yaml:2:28: approvals.justification: unknown keyword "reqired" (did you mean "required"?); write required, or a text of more than one word`,
	}},
	{"hex roles that are not GUIDs", withApprovals + "  a: {role: 1234-5678}\n  b: {role: deadbeef}\n  c: {role: \"12345\"}\n  d: {role: DEADBEEF-CAFE}\n  e: {role: \"{9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c1}\"}\n", []string{
		`p.yaml:4:13: tools["a"].role: "1234-5678" looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits`,
		`p.yaml:5:13: tools["b"].role: "deadbeef" looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits`,
		`p.yaml:6:13: tools["c"].role: "12345" looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits`,
		`p.yaml:7:13: tools["d"].role: "DEADBEEF-CAFE" looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits`,
	}},
	{"ambiguous upstream names", "version: 1\nupstreams:\n  db_: {command: [x]}\n  _db: {command: [x]}\n  d__b: {command: [x]}\ntools: {a: allow}\n", []string{
		`p.yaml:3:3: upstreams: name "db_" is ambiguous in tool names, which are UPSTREAM__TOOL: a name must not contain "__" or end with _`,
		`p.yaml:4:3: upstreams: name "_db": use letters, digits, - and _, starting with a letter or digit`,
		`p.yaml:5:3: upstreams: name "d__b" is ambiguous in tool names, which are UPSTREAM__TOOL: a name must not contain "__" or end with _`,
	}},
}

func TestParseMistakes(t *testing.T) { runProblemCases(t, mistakeCases) }

// TestParseNearMistakes: what resembles a mistake but is meant is kept.
func TestParseNearMistakes(t *testing.T) {
	src := withApprovals +
		"  a: {role: DBA, justification: required, ticket: \"required by {{.Tool}}\"}\n" +
		"  b: {role: Cafe, justification: retire the old table}\n" +
		"  c: {role: 9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c1, justification: Maintenance}\n" +
		"  d: {role: Tier-1 Support}\n" +
		"  e: {role: R, justification: \"{{.Tool}}\"}\n" +
		"  f:\tallow # a tab after the colon separates, as YAML allows\n"
	p, problems, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	for tool, role := range map[string]string{"a": "DBA", "b": "Cafe", "c": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c1", "d": "Tier-1 Support"} {
		if d := p.Decide(tool, nil); d.Role != role {
			t.Errorf("%s: role %q, want %q", tool, d.Role, role)
		}
	}
}
