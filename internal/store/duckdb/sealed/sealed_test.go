package sealed

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// realEntries returns the real records extracted, cut into blocks by
// Split, each with a sequence number and a received time.
func realEntries(t testing.TB) [][]Entry {
	t.Helper()
	var es []Entry
	for i, rr := range audittest.RealRecords(t) {
		r, err := audit.Extract(rr.Raw)
		if err != nil {
			continue // the few the store refuses
		}
		es = append(es, Entry{Record: r, Seq: int64(i + 1), Received: 1_700_000_000 + int64(i%7)})
	}
	if len(es) == 0 {
		t.Fatal("no real records")
	}
	return Split(es)
}

func equalEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if d := sameRecord(&got[i].Record, &want[i].Record); d != "" {
			t.Fatalf("entry %d (%s): %s differs", i, want[i].Record.EventID, d)
		}
		if got[i].Seq != want[i].Seq || got[i].Received != want[i].Received {
			t.Fatalf("entry %d: seq %d received %d, want %d %d", i, got[i].Seq, got[i].Received, want[i].Seq, want[i].Received)
		}
	}
}

// encoders are the blocks' encodings: the tier's, zstd's fastest (an
// import's before session 34) and an import's S2.
var encoders = []struct {
	name  string
	new   func() (*Encoder, error)
	first byte // the blocks' first byte
}{
	{"Level", NewEncoder, 0x28},
	{"SpeedFastest", func() (*Encoder, error) { return NewEncoderAt(zstd.SpeedFastest) }, 0x28},
	{"import S2", NewImportEncoder, blockS2},
}

// TestBlockRoundTrip encodes every real record, grouped as the tier groups
// them, with each encoder, and decodes each block back to the same records
// in newest-first order, with filters that hold every value and ID of the
// block; one Decoder reads every kind, and the kinds differ only in their
// bytes (the same Meta).
func TestBlockRoundTrip(t *testing.T) {
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var metas [][]Meta // by encoder, block
	for _, e := range encoders {
		t.Run(e.name, func(t *testing.T) {
			enc, err := e.new()
			if err != nil {
				t.Fatal(err)
			}
			metas = append(metas, roundTrip(t, enc, dec, e.first))
		})
	}
	for i := 1; i < len(metas); i++ {
		if diff := gocmp.Diff(metas[0], metas[i]); diff != "" {
			t.Errorf("%s's Metas differ from %s's:\n%s", encoders[i].name, encoders[0].name, diff)
		}
	}
}

func roundTrip(t *testing.T, enc *Encoder, dec *Decoder, first byte) []Meta {
	var metas []Meta
	blocks, records := 0, 0
	for _, es := range realEntries(t) {
		want := slices.Clone(es)
		slices.SortFunc(want, func(a, b Entry) int { return Newer(&a, &b) })
		data, m, err := enc.Encode(es)
		if err != nil {
			t.Fatal(err)
		}
		if data[0] != first {
			t.Fatalf("a block begins with %#x, want %#x", data[0], first)
		}
		again, _, err := enc.Encode(slices.Clone(want))
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("the same block encoded again: %d bytes, %v; want the same %d", len(again), err, len(data))
		}
		m.ID = int64(blocks + 1)
		got, err := dec.Decode(data, &m)
		if err != nil {
			t.Fatal(err)
		}
		equalEntries(t, got, want)
		if m.N != len(want) || m.TMax != want[0].Record.Time.Unix() || m.TMin != want[len(want)-1].Record.Time.Unix() {
			t.Fatalf("meta %+v for %d records", m, len(want))
		}
		var toks []uint64
		for i := range want {
			r := &want[i].Record
			if !m.IDFilter.Has(Token(audit.AttrEventID, r.EventID)) {
				t.Fatalf("ID filter lacks %s", r.EventID)
			}
			for _, tok := range ValueTokens(toks[:0], r) {
				if !m.Filter.Has(tok) {
					t.Fatalf("filter lacks a token of %s", r.EventID)
				}
			}
			if want[i].Seq < m.SeqMin || want[i].Seq > m.SeqMax || want[i].Received < m.RecvMin || want[i].Received > m.RecvMax {
				t.Fatalf("meta %+v does not bound entry %d", m, i)
			}
		}
		blocks++
		records += len(want)
		metas = append(metas, m)
	}
	t.Logf("%d records in %d blocks", records, blocks)
	return metas
}

// TestBlockKeepsWhatTheJSONDoesNotSay: a record whose JSON names another
// eventID first, or whose ID or time differ from the JSON's, keeps its own
// in the block and decodes exactly.
func TestBlockKeepsWhatTheJSONDoesNotSay(t *testing.T) {
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	mk := func(id string, at time.Time, raw string) Entry {
		return Entry{Record: audit.Record{Raw: []byte(raw), Account: "111122223333", Region: "us-east-1", EventID: id,
			Time: at, EventName: "PutObject", ReadOnly: audit.False}, Seq: 9, Received: 5}
	}
	es := []Entry{
		mk("b", base, `{"requestParameters":{"eventID":"zzz"},"eventID":"b","eventTime":"2026-03-04T10:00:00Z"}`),
		mk("a", base.Add(time.Hour), `{"eventID":"other","eventTime":"2026-03-04T10:00:00Z"}`),
		mk("c", base.Add(2*time.Hour), `{"eventID":"c\u0041","eventTime":"bad"}`),
		mk("d", base.Add(3*time.Hour), `{}`),
	}
	es[1].Seq, es[2].Seq, es[3].Seq = 7, 100, 8
	want := slices.Clone(es)
	slices.SortFunc(want, func(a, b Entry) int { return Newer(&a, &b) })
	enc, _ := NewEncoder()
	dec, _ := NewDecoder()
	data, m, err := enc.Encode(es)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dec.Decode(data, &m)
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, got, want)
}

// TestEncodeRefusesMixedBlocks: a block is one Part and one day.
func TestEncodeRefusesMixedBlocks(t *testing.T) {
	enc, _ := NewEncoder()
	base := time.Date(2026, 3, 4, 23, 59, 59, 0, time.UTC)
	r := audit.Record{Raw: []byte(`{}`), Account: "111122223333", Region: "us-east-1", EventID: "x", Time: base}
	for name, other := range map[string]func(*audit.Record){
		"account":  func(o *audit.Record) { o.Account = "444455556666" },
		"region":   func(o *audit.Record) { o.Region = "eu-west-1" },
		"category": func(o *audit.Record) { o.Category = audit.CategoryData },
		"day":      func(o *audit.Record) { o.Time = base.Add(time.Second) },
	} {
		o := r
		o.EventID = "y"
		other(&o)
		if _, _, err := enc.Encode([]Entry{{Record: r, Seq: 1}, {Record: o, Seq: 2}}); err == nil {
			t.Errorf("%s: a mixed block encoded", name)
		}
	}
	if _, _, err := enc.Encode(nil); err == nil {
		t.Error("an empty block encoded")
	}
	if _, _, err := enc.Encode([]Entry{{Record: r}}); err == nil {
		t.Error("a record without a sequence number encoded")
	}
}

// TestBloomFalsePositives checks the filters' rates are near their design.
func TestBloomFalsePositives(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, bits := range []float64{BitsPerValue, BitsPerID} {
		b := NewBloom(1000, bits)
		for range 1000 {
			b.Add(rng.Uint64())
		}
		fp := 0
		const probes = 1_000_000
		for range probes {
			if b.Has(rng.Uint64()) {
				fp++
			}
		}
		if rate := float64(fp) / probes; rate > 1e-3 {
			t.Errorf("%v bits: false positive rate %g", bits, rate)
		}
		c, err := UnmarshalBloom(b.Marshal())
		if err != nil || c.K != b.K || !bytes.Equal(c.Bits, b.Bits) {
			t.Errorf("%v bits: marshal round trip: %v", bits, err)
		}
	}
	// Small filters (a block of few records) near their design too:
	// at 10 bits a value about 0.8% false positives.
	for _, n := range []int{5, 20, 77} {
		fp, probes := 0, 0
		for range 2000 {
			b := NewBloom(n, 10)
			for range n {
				b.Add(rng.Uint64())
			}
			for range 500 {
				probes++
				if b.Has(rng.Uint64()) {
					fp++
				}
			}
		}
		if rate := float64(fp) / float64(probes); rate > 0.012 {
			t.Errorf("%d tokens at 10 bits: false positive rate %g, want about 0.008", n, rate)
		}
	}
	// And the ID filters of small blocks at their 24 bits (about 1e-5):
	// double hashing gave 2.7e-5 to 6.8e-5 here.
	fp, probes := 0, 0
	for _, n := range []int{20, 77} {
		for range 2000 {
			b := NewBloom(n, BitsPerID)
			for range n {
				b.Add(rng.Uint64())
			}
			for range 1000 {
				probes++
				if b.Has(rng.Uint64()) {
					fp++
				}
			}
		}
	}
	if rate := float64(fp) / float64(probes); rate > 2.5e-5 {
		t.Errorf("small ID filters: false positive rate %g, want about 1e-5", rate)
	}
	var zero Bloom
	if zero.Has(1) {
		t.Error("the zero filter has a token")
	}
	for _, p := range [][]byte{nil, {0, 1}, {3}, {65, 0}} {
		if _, err := UnmarshalBloom(p); err == nil {
			t.Errorf("filter %v unmarshalled", p)
		}
	}
}

// FuzzDecode: damaged blocks are errors, never panics or huge allocations.
func FuzzDecode(f *testing.F) {
	enc, _ := NewEncoder()
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	var es []Entry
	for i := range 5 {
		id := fmt.Sprintf("id-%d", i)
		es = append(es, Entry{Record: audit.Record{
			Raw:     []byte(fmt.Sprintf(`{"eventID":"%s","eventTime":"%s"}`, id, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339))),
			Account: "111122223333", Region: "us-east-1", EventID: id, Time: base.Add(time.Duration(i) * time.Minute),
			Resources: []audit.Resource{{Type: "AWS::S3::Bucket", Name: "b"}},
		}, Seq: int64(10 + i), Received: 3})
	}
	data, m, err := enc.Encode(es)
	if err != nil {
		f.Fatal(err)
	}
	dec, err := NewDecoder()
	if err != nil {
		f.Fatal(err)
	}
	content, err := dec.zdec.DecodeAll(data, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(content)
	f.Add([]byte{5})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, content []byte) {
		es, err := decodeContent(content, &m)
		if err == nil && len(es) != m.N {
			t.Fatalf("%d entries decoded, meta says %d", len(es), m.N)
		}
	})
}

// TestImportBlockOfTheLargestContent: an S2 block whose content is near
// MaxContent (records of audit.MaxRecordSize, past the S2 dictionary's
// reach) decodes to the same records.
func TestImportBlockOfTheLargestContent(t *testing.T) {
	enc, err := NewImportEncoder()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	var es []Entry
	for i := range 2 {
		id := fmt.Sprintf("id-%d", i)
		at := base.Add(time.Duration(i) * time.Minute)
		head := fmt.Sprintf(`{"eventID":"%s","eventTime":"%s","requestParameters":{"p":"`, id, at.Format(time.RFC3339))
		pad := make([]byte, audit.MaxRecordSize-len(head)-4-200)
		for j := range pad {
			pad[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)]
		}
		raw := append(append([]byte(head), pad...), `"}}`...)
		es = append(es, Entry{Record: audit.Record{Raw: raw, Account: "111122223333", Region: "us-east-1",
			EventID: id, Time: at}, Seq: int64(1 + i), Received: 3})
	}
	want := slices.Clone(es)
	slices.SortFunc(want, func(a, b Entry) int { return Newer(&a, &b) })
	data, m, err := enc.Encode(es)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != blockS2 || len(data) < audit.MaxRecordSize {
		t.Fatalf("a block of %d bytes beginning with %#x", len(data), data[0])
	}
	got, err := dec.Decode(data, &m)
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, got, want)
}

// TestDecodeDamagedS2Blocks: an S2 block cut short, with a byte changed or
// declaring more content than MaxContent is an error (or, a byte changed,
// a block of the same records' count), never a panic.
func TestDecodeDamagedS2Blocks(t *testing.T) {
	enc, _ := NewImportEncoder()
	dec, _ := NewDecoder()
	blocks := realEntries(t)
	data, m, err := enc.Encode(blocks[len(blocks)/2])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 5, len(data) / 2, len(data) - 1} {
		if _, err := dec.Decode(data[:n], &m); err == nil {
			t.Errorf("a block cut to %d of %d bytes decoded", n, len(data))
		}
	}
	for i := 1; i < len(data); i += 97 {
		bad := slices.Clone(data)
		bad[i] ^= 0x5a
		if es, err := dec.Decode(bad, &m); err == nil && len(es) != m.N {
			t.Errorf("byte %d changed: %d entries, meta says %d", i, len(es), m.N)
		}
	}
	huge := append([]byte{blockS2}, binary.AppendUvarint(nil, MaxContent+1)...)
	_, k := binary.Uvarint(data[1:])
	huge = append(huge, data[1+k:]...)
	if _, err := dec.Decode(huge, &m); err == nil {
		t.Error("a block declaring more than MaxContent decoded")
	}
	if _, err := dec.Decode([]byte{blockS2}, &m); err == nil {
		t.Error("an empty S2 block decoded")
	}
}

// FuzzDecodeBlock: damaged blocks of either kind are errors, never panics
// or huge allocations.
func FuzzDecodeBlock(f *testing.F) {
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	var es []Entry
	for i := range 5 {
		id := fmt.Sprintf("id-%d", i)
		es = append(es, Entry{Record: audit.Record{
			Raw:     []byte(fmt.Sprintf(`{"eventID":"%s","eventTime":"%s"}`, id, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339))),
			Account: "111122223333", Region: "us-east-1", EventID: id, Time: base.Add(time.Duration(i) * time.Minute),
		}, Seq: int64(10 + i), Received: 3})
	}
	var m Meta
	for _, e := range encoders {
		enc, err := e.new()
		if err != nil {
			f.Fatal(err)
		}
		data, mm, err := enc.Encode(slices.Clone(es))
		if err != nil {
			f.Fatal(err)
		}
		m = mm
		f.Add(data)
	}
	f.Add([]byte{blockS2, 0xff, 0xff, 0xff, 0xff, 0x0f})
	dec, err := NewDecoder()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := dec.Decode(data, &m)
		if err == nil && len(es) != m.N {
			t.Fatalf("%d entries decoded, meta says %d", len(es), m.N)
		}
	})
}

// BenchmarkEncode encodes the real records cut into blocks as the tier
// cuts them; it reports the bytes a record takes compressed.
func BenchmarkEncode(b *testing.B) {
	blocks := realEntries(b)
	enc, err := NewEncoder()
	if err != nil {
		b.Fatal(err)
	}
	records, size := 0, 0
	b.ResetTimer()
	for b.Loop() {
		records, size = 0, 0
		for _, es := range blocks {
			data, _, err := enc.Encode(es)
			if err != nil {
				b.Fatal(err)
			}
			records += len(es)
			size += len(data)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
	b.ReportMetric(float64(size)/float64(records), "B/record")
}

// BenchmarkDecode decodes the same blocks: what a lookup pays for a block
// it has not cached.
func BenchmarkDecode(b *testing.B) {
	blocks := realEntries(b)
	enc, err := NewEncoder()
	if err != nil {
		b.Fatal(err)
	}
	dec, err := NewDecoder()
	if err != nil {
		b.Fatal(err)
	}
	type block struct {
		data []byte
		m    Meta
	}
	var bs []block
	records := 0
	for _, es := range blocks {
		data, m, err := enc.Encode(es)
		if err != nil {
			b.Fatal(err)
		}
		bs = append(bs, block{data, m})
		records += len(es)
	}
	b.ResetTimer()
	for b.Loop() {
		for i := range bs {
			if _, err := dec.Decode(bs[i].data, &bs[i].m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(bs)), "µs/block")
}
