package pimtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseISODuration reads the ISO-8601 durations Graph accepts in
// scheduleInfo.expiration.duration: PnDTnHnMnS with any part optional,
// fractional seconds allowed (PT15M, PT1H30M, P1D, PT0.5S). Years, months
// and weeks are refused because their length is not fixed.
func parseISODuration(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" || rest == "T" {
		return 0, fmt.Errorf("duration %q is not ISO-8601 (PnDTnHnMnS)", s)
	}
	var total time.Duration
	inTime := false
	units := "D"
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, fmt.Errorf("duration %q has two T designators", s)
			}
			inTime, units, rest = true, "HMS", rest[1:]
			if rest == "" {
				return 0, fmt.Errorf("duration %q ends after T", s)
			}
			continue
		}
		i := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if i <= 0 {
			return 0, fmt.Errorf("duration %q is not ISO-8601 (PnDTnHnMnS)", s)
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		u := rest[i]
		pos := strings.IndexByte(units, u)
		if pos < 0 {
			return 0, fmt.Errorf("duration %q: unit %q is out of place or not supported", s, u)
		}
		units = units[pos+1:] // each unit once, largest first
		unit := map[byte]time.Duration{'D': 24 * time.Hour, 'H': time.Hour, 'M': time.Minute, 'S': time.Second}[u]
		if n > float64(1<<62)/float64(unit) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		total += time.Duration(n * float64(unit))
		rest = rest[i+1:]
	}
	return total, nil
}

// formatISODuration writes d as PTnHnMnS, the form Graph echoes.
func formatISODuration(d time.Duration) string {
	if d == 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("PT")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S")
	}
	return b.String()
}
