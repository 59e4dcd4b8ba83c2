package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// Shapes makes synthetic records for benchmarks from the real records of
// shared/testdata/real: each is a real record, compact as trails deliver
// it, with a fresh eventID, the given eventTime, account and region, and
// an access key drawn from a pool of Keys. Sizes, field mixes and
// compressibility are therefore those of real CloudTrail.
type Shapes struct {
	rng    *rand.Rand
	shapes []shape
	// Keys is the size of the access-key pool (default 5,000).
	Keys int
	n    uint64
}

// shape is a real record cut at the values Shapes replaces.
type shape struct {
	rec   audit.Record
	parts [][]byte // constant bytes around the values, len(fields)+1
	field []string // which value goes after parts[i]
}

// NewShapes reads the real records (skipping tb as audittest.RealDataDir
// does when they are missing) and returns a generator seeded with seed.
func NewShapes(tb testing.TB, seed uint64) *Shapes {
	tb.Helper()
	s := &Shapes{rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995)), Keys: 5000}
	for _, rr := range audittest.RealRecords(tb) {
		var b bytes.Buffer
		if json.Compact(&b, rr.Raw) != nil {
			continue
		}
		if sh, ok := cut(b.Bytes()); ok {
			s.shapes = append(s.shapes, sh)
		}
	}
	if len(s.shapes) == 0 {
		tb.Fatal("storetest: no usable real record")
	}
	// Every shape must give what Extract gives for its bytes.
	for _, sh := range s.shapes[:min(len(s.shapes), 200)] {
		r := s.make(&sh, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), "123456789012", "eu-west-1")
		want, err := audit.Extract(r.Raw)
		if err != nil {
			tb.Fatalf("storetest: a synthetic record does not extract: %v", err)
		}
		if diff := cmp.Diff(want, r, EquateRecords); diff != "" {
			tb.Fatalf("storetest: a synthetic record's index differs from Extract (-extract +made):\n%s", diff)
		}
	}
	return s
}

// cut finds the top-level values Shapes replaces in a compact record.
func cut(raw []byte) (shape, bool) {
	rec, err := audit.Extract(slices.Clone(raw))
	if err != nil || rec.Category != audit.CategoryManagement {
		return shape{}, false
	}
	type at struct {
		field      string
		start, end int
	}
	var ats []at
	find := func(field, member, value string) bool {
		pat := []byte(`"` + member + `":"`)
		i := bytes.Index(raw, pat)
		if i < 0 || bytes.Index(raw[i+1:], pat) >= 0 {
			return false // absent or ambiguous
		}
		start := i + len(pat)
		if !bytes.HasPrefix(raw[start:], []byte(value+`"`)) {
			return false
		}
		ats = append(ats, at{field, start, start + len(value)})
		return true
	}
	var timeVal struct {
		EventTime string `json:"eventTime"`
	}
	_ = json.Unmarshal(raw, &timeVal)
	if !find("id", "eventID", rec.EventID) || !find("time", "eventTime", timeVal.EventTime) ||
		!find("region", "awsRegion", rec.Region) || !find("account", "recipientAccountId", rec.Account) {
		return shape{}, false
	}
	if rec.AccessKeyID != "" && !find("key", "accessKeyId", rec.AccessKeyID) {
		return shape{}, false
	}
	slices.SortFunc(ats, func(a, b at) int { return a.start - b.start })
	sh := shape{rec: rec}
	prev := 0
	for _, a := range ats {
		sh.parts = append(sh.parts, raw[prev:a.start])
		sh.field = append(sh.field, a.field)
		prev = a.end
	}
	sh.parts = append(sh.parts, raw[prev:])
	return sh, true
}

func (s *Shapes) make(sh *shape, t time.Time, account, region string) audit.Record {
	s.n++
	id := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", s.rng.Uint32(), s.rng.IntN(1<<16), s.rng.IntN(1<<12), s.rng.IntN(1<<12), s.n)
	key := fmt.Sprintf("ASIAQ%015d", s.rng.IntN(max(s.Keys, 1)))
	t = t.UTC().Truncate(time.Second)
	var b bytes.Buffer
	for i, f := range sh.field {
		b.Write(sh.parts[i])
		switch f {
		case "id":
			b.WriteString(id)
		case "time":
			b.WriteString(audit.FormatTime(t))
		case "region":
			b.WriteString(region)
		case "account":
			b.WriteString(account)
		case "key":
			b.WriteString(key)
		}
	}
	b.Write(sh.parts[len(sh.parts)-1])
	r := sh.rec
	r.Raw, r.EventID, r.Time, r.Account, r.Region = b.Bytes(), id, t, account, region
	if r.AccessKeyID != "" {
		r.AccessKeyID = key
	}
	r.Resources = slices.Clone(r.Resources)
	return r
}

// Record returns a record of a random real shape at time t, in account
// and region.
func (s *Shapes) Record(t time.Time, account, region string) audit.Record {
	return s.make(&s.shapes[s.rng.IntN(len(s.shapes))], t, account, region)
}

// Records returns n records from start to end, oldest first, evenly spread.
func (s *Shapes) Records(n int, start, end time.Time, account, region string) []audit.Record {
	out := make([]audit.Record, n)
	step := end.Sub(start) / time.Duration(max(n, 1))
	for i := range out {
		out[i] = s.Record(start.Add(step*time.Duration(i)), account, region)
	}
	return out
}
