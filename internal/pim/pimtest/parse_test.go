package pimtest

import (
	"reflect"
	"testing"
	"time"
)

func TestParseISODuration(t *testing.T) {
	good := map[string]time.Duration{
		"PT15M":     15 * time.Minute,
		"PT1H30M":   90 * time.Minute,
		"PT8H":      8 * time.Hour,
		"PT90S":     90 * time.Second,
		"PT0.5S":    500 * time.Millisecond,
		"P1D":       24 * time.Hour,
		"P1DT2H":    26 * time.Hour,
		"PT1H0M1S":  time.Hour + time.Second,
		"PT1.5H":    90 * time.Minute,
		"P0D":       0,
		"PT2H5M10S": 2*time.Hour + 5*time.Minute + 10*time.Second,
	}
	for in, want := range good {
		got, err := parseISODuration(in)
		if err != nil || got != want {
			t.Errorf("parseISODuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "15m", "PT15", "P1H", "PT1D", "PT30M1H", "PT1M1M", "P1Y", "P1W", "PTM", "P1DT", "PT1..5S", "PT-5M", "P1TT1H", "pt15m", "PT99999999999999H"} {
		if got, err := parseISODuration(in); err == nil {
			t.Errorf("parseISODuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormatISODuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                 "PT0S",
		15 * time.Minute:                  "PT15M",
		90 * time.Minute:                  "PT1H30M",
		8 * time.Hour:                     "PT8H",
		time.Hour + 1500*time.Millisecond: "PT1H1.5S",
	} {
		if got := formatISODuration(d); got != want {
			t.Errorf("formatISODuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := parseISODuration(want); err != nil || back != d {
			t.Errorf("round trip of %v: %v, %v", d, back, err)
		}
	}
}

func TestParseFilter(t *testing.T) {
	allowed := []string{"displayName", "status", "roleDefinitionId"}
	good := map[string][]clause{
		"":                               nil,
		"displayName eq 'Global Reader'": {{"displayName", "Global Reader"}},
		"displayName eq 'O''Brien'":      {{"displayName", "O'Brien"}},
		"displayName eq ''''":            {{"displayName", "'"}},
		"DisplayName EQ 'x'":             {{"displayName", "x"}},
		"status eq 'A' and roleDefinitionId eq 'B'": {{"status", "A"}, {"roleDefinitionId", "B"}},
		"  status  eq  'A'  AND  status eq 'and'  ": {{"status", "A"}, {"status", "and"}},
	}
	for in, want := range good {
		got, err := parseFilter(in, allowed...)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseFilter(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"id eq 'x'", "displayName", "displayName eq", "displayName ne 'x'", "displayName eq x",
		"displayName eq 'x", "displayName eq 'x' or status eq 'y'", "displayName eq 'x' and",
		"startswith(displayName,'x')",
	} {
		if got, err := parseFilter(in, allowed...); err == nil {
			t.Errorf("parseFilter(%q) = %v, want an error", in, got)
		}
	}
}
