package pimtest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// collect follows @odata.nextLink from path and returns every item and
// the links it followed.
func (e *emu) collect(t *testing.T, tok, path string) (items []map[string]any, links []string) {
	t.Helper()
	for next := path; next != ""; {
		r := e.do(t, http.MethodGet, next, tok, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, r.status, r.raw)
		}
		items = append(items, r.values(t)...)
		next = ""
		if l, ok := r.body["@odata.nextLink"].(string); ok {
			next = l
			links = append(links, l)
			if len(links) > 20 {
				t.Fatal("nextLink loops")
			}
		}
	}
	return items, links
}

func TestPaging(t *testing.T) {
	sc := testScenario()
	sc.PageSize = 2
	e := startEmu(t, sc)
	tok := e.Token(alice, WithMFA())
	var ids []string
	for _, role := range []string{readerID, dbaID, treasuryID, autoOKID, autoNoID} {
		ids = append(ids, e.create(t, tok, activation(alice, role, "PT15M")))
	}

	items, links := e.collect(t, tok, myRequestsPath)
	if len(links) != 2 {
		t.Errorf("followed %d nextLinks for 5 items in pages of 2, want 2", len(links))
	}
	if len(items) != len(ids) {
		t.Fatalf("collected %d requests, want %d", len(items), len(ids))
	}
	for i, it := range items {
		if it["id"] != ids[i] {
			t.Errorf("item %d = %v, want %s (creation order, no gaps or repeats)", i, it["id"], ids[i])
		}
	}
	for _, l := range links {
		u, err := url.Parse(l)
		if err != nil || !u.IsAbs() || !strings.HasPrefix(l, e.URL()+myRequestsPath) || u.Query().Get("$skiptoken") == "" {
			t.Errorf("nextLink %q is not an absolute link to the same list with a $skiptoken", l)
		}
	}

	filtered, links := e.collect(t, tok, myRequestsPath+"?$filter=status%20eq%20'PendingApproval'")
	if len(filtered) != 3 || len(links) != 1 {
		t.Fatalf("filtered paging: %d items over %d links, want 3 over 1", len(filtered), len(links))
	}
	if q, _ := url.Parse(links[0]); q.Query().Get("$filter") != "status eq 'PendingApproval'" {
		t.Errorf("nextLink %q lost the $filter", links[0])
	}
	for _, it := range filtered {
		if it["status"] != StatusPendingApproval {
			t.Errorf("filtered page holds %v", it)
		}
	}

	if elig, links := e.collect(t, tok, eligibilityPath); len(elig) != 5 || len(links) != 2 {
		t.Errorf("eligibilities: %d over %d links, want 5 over 2", len(elig), len(links))
	}
	if defs, links := e.collect(t, tok, roleDefsPath); len(defs) != len(sc.Roles) || len(links) != (len(sc.Roles)-1)/2 {
		t.Errorf("role definitions: %d over %d links", len(defs), len(links))
	}
	last := e.do(t, http.MethodGet, assignmentsPath, tok, nil)
	if _, ok := last.body["@odata.nextLink"]; ok {
		t.Errorf("a single page carries a nextLink: %s", last.raw)
	}
}

func TestSkipTokenRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100, 123456} {
		got, err := decodeSkipToken(encodeSkipToken(n))
		if err != nil || got != n {
			t.Errorf("decode(encode(%d)) = %d, %v", n, got, err)
		}
	}
	for _, bad := range []string{"", "!!", encodeSkipToken(-1), "cGltdGVzdC1za2lwOng"} {
		if _, err := decodeSkipToken(bad); err == nil {
			t.Errorf("decodeSkipToken(%q) accepted", bad)
		}
	}
	if got := withSkipToken("$filter=a%20eq%20'b'&%24skiptoken=old&$top=5", "new"); got != "$filter=a%20eq%20'b'&$top=5&$skiptoken=new" {
		t.Errorf("withSkipToken = %q", got)
	}
}
