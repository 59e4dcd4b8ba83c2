package sealed

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// oldJSONTime and oldJSONString are the readers audit.IndexAt and parseTime
// replaced (session 33): bytes.Index and time.Parse. The new ones must
// answer as they did, or blocks written before would decode otherwise.
func oldJSONString(raw []byte, member string) (string, bool) {
	i := bytes.Index(raw, []byte(member))
	if i < 0 {
		return "", false
	}
	rest := raw[i+len(member):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", false
	}
	return string(rest[:j]), true
}

func oldJSONTime(raw []byte) (int64, bool) {
	s, ok := oldJSONString(raw, memberTime)
	if !ok {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

// sameReaders fails when the readers answer raw otherwise than the old.
func sameReaders(t *testing.T, raw []byte) {
	t.Helper()
	for _, m := range []struct {
		member string
		anchor int
	}{{memberID, anchorID}, {memberTime, anchorTime}} {
		got, gotOK := jsonString(raw, m.member, m.anchor)
		want, wantOK := oldJSONString(raw, m.member)
		if got != want || gotOK != wantOK {
			t.Fatalf("jsonString(%q, %s) = %q, %v; want %q, %v", raw, m.member, got, gotOK, want, wantOK)
		}
	}
	got, gotOK := jsonTime(raw)
	want, wantOK := oldJSONTime(raw)
	if got != want || gotOK != wantOK {
		t.Fatalf("jsonTime(%q) = %d, %v; want %d, %v", raw, got, gotOK, want, wantOK)
	}
}

func TestReadersAsBefore(t *testing.T) {
	for _, raw := range []string{
		`{"eventTime":"2024-02-29T23:59:59Z","eventID":"a"}`,
		`{"eventTime":"2023-02-29T00:00:00Z"}`,
		`{"eventTime":"2024-04-31T00:00:00Z"}`,
		`{"eventTime":"2024-12-31T24:00:00Z"}`,
		`{"eventTime":"2024-12-31T23:60:00Z"}`,
		`{"eventTime":"2024-12-31T23:59:60Z"}`,
		`{"eventTime":"2024-00-10T00:00:00Z"}`,
		`{"eventTime":"2024-13-10T00:00:00Z"}`,
		`{"eventTime":"2024-01-00T00:00:00Z"}`,
		`{"eventTime":"0000-01-01T00:00:00Z"}`,
		`{"eventTime":"9999-12-31T23:59:59Z"}`,
		`{"eventTime":"1900-02-29T00:00:00Z"}`,
		`{"eventTime":"2000-02-29T00:00:00Z"}`,
		`{"eventTime":"2024-01-01T00:00:00.5Z"}`,
		`{"eventTime":"2024-01-01T00:00:00+01:00"}`,
		`{"eventTime":"2024-01-01t00:00:00z"}`,
		`{"eventTime":"2024-1-01T00:00:00Z"}`,
		`{"eventTime":"+024-01-01T00:00:00Z"}`,
		`{"eventTime":"2024-01-01T00:00:0xZ"}`,
		`{"eventTime":"2024-01-01T00:00:00\u005a"}`,
		`{"x":{"eventID":"inner"},"eventID":"outer"}`,
		`{"eventID":"esc\"aped"}`,
		`{"eventID":"unterminated`,
	} {
		sameReaders(t, []byte(raw))
	}
	for _, rr := range audittest.RealRecords(t) {
		sameReaders(t, rr.Raw)
	}
}

func FuzzReadersAsBefore(f *testing.F) {
	f.Add([]byte(`{"eventTime":"2024-02-29T23:59:59Z","eventID":"a"}`))
	f.Add([]byte(`"eventID":"D"eventTime":"T`))
	f.Add([]byte(`{"eventTime":"2024-04-31T00:00:00Z"}`))
	f.Add([]byte(`2024-02-29T23:59:59Z`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sameReaders(t, raw)
		// raw as the time itself.
		got, gotOK := parseTime(raw)
		want, err := time.Parse(time.RFC3339, string(raw))
		if gotOK != (err == nil) || gotOK && got != want.Unix() {
			t.Fatalf("parseTime(%q) = %d, %v; time.Parse: %v, %v", raw, got, gotOK, want, err)
		}
	})
}

// TestSplitAsSortingEntries: Split, which sorts indexes and moves each
// entry once (session 33), leaves es in the order sorting the entries
// themselves did, shuffled or not.
func TestSplitAsSortingEntries(t *testing.T) {
	var es []Entry
	for _, blk := range realEntries(t) {
		es = append(es, blk...)
	}
	// Records of more parts and days, and ties on time.
	for i := range 300 {
		e := es[i%len(es)]
		e.Record.EventID = fmt.Sprintf("%s-%d", e.Record.EventID, i)
		e.Record.Time = time.Unix(1_700_000_000+int64(i%5)*40_000, 0).UTC()
		e.Record.Region = []string{"us-east-1", "eu-west-1"}[i%2]
		e.Seq = int64(100_000 + i)
		es = append(es, e)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		if round > 0 {
			rng.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		}
		want := slices.Clone(es)
		slices.SortFunc(want, func(a, b Entry) int {
			ra, rb := &a.Record, &b.Record
			return cmp.Or(strings.Compare(ra.Account, rb.Account), strings.Compare(ra.Region, rb.Region),
				int(ra.Category)-int(rb.Category), cmp.Compare(Day(rb.Time.Unix()), Day(ra.Time.Unix())), Newer(&a, &b))
		})
		got := slices.Clone(es)
		blocks := Split(got)
		equalEntries(t, got, want)
		n := 0
		for _, b := range blocks {
			if &b[0] != &got[n] {
				t.Fatalf("round %d: block at %d does not share es's memory", round, n)
			}
			n += len(b)
		}
		if n != len(got) {
			t.Fatalf("round %d: blocks hold %d entries of %d", round, n, len(got))
		}
	}
}
