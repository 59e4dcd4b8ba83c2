package duckdb

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

var trainDict = flag.Bool("train-dict", false, "rebuild ../dict/zstd-dict-v1.bin from the real records (never for a shipped ID)")

// trainingSet returns the real records, compact as trails deliver them.
func trainingSet(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	for _, r := range audittest.RealRecords(t) {
		var b bytes.Buffer
		if err := json.Compact(&b, r.Raw); err != nil {
			t.Fatalf("%s[%d]: %v", r.File, r.Index, err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

// buildDict builds a dictionary whose history is one typical record per
// (eventSource, eventName), the most frequent shapes last (nearest, so
// cheapest to reference), up to maxHistory bytes.
func buildDict(t *testing.T, recs [][]byte, id uint32) []byte {
	t.Helper()
	const maxHistory = 110 << 10
	type group struct {
		n    int
		recs [][]byte
	}
	groups := map[string]*group{}
	for _, r := range recs {
		var v struct{ EventSource, EventName string }
		_ = json.Unmarshal(r, &v)
		k := v.EventSource + " " + v.EventName
		if groups[k] == nil {
			groups[k] = &group{}
		}
		groups[k].n++
		groups[k].recs = append(groups[k].recs, r)
	}
	var gs []*group
	for _, g := range groups {
		slices.SortFunc(g.recs, func(a, b []byte) int { return cmp.Or(cmp.Compare(len(a), len(b)), bytes.Compare(a, b)) })
		gs = append(gs, g)
	}
	// Most frequent first, then by the typical record for determinism.
	slices.SortFunc(gs, func(a, b *group) int {
		return cmp.Or(cmp.Compare(b.n, a.n), bytes.Compare(a.recs[len(a.recs)/2], b.recs[len(b.recs)/2]))
	})
	var picked [][]byte
	size := 0
	for _, g := range gs {
		r := g.recs[len(g.recs)/2]
		if len(r) > 8<<10 || size+len(r) > maxHistory {
			continue
		}
		picked = append(picked, r)
		size += len(r)
	}
	slices.Reverse(picked)
	d, err := zstd.BuildDict(zstd.BuildDictOptions{
		ID:       id,
		Contents: recs,
		History:  bytes.Join(picked, nil),
		Offsets:  [3]int{1, 4, 8},
		Level:    zstd.SpeedDefault,
	})
	if err != nil {
		t.Fatalf("BuildDict: %v", err)
	}
	return d
}

// ratio compresses every record alone and returns raw bytes / frame bytes.
func ratio(t *testing.T, recs [][]byte, opts ...zstd.EOption) float64 {
	t.Helper()
	enc, err := zstd.NewWriter(nil, append([]zstd.EOption{zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var raw, packed int
	var buf []byte
	for _, r := range recs {
		buf = enc.EncodeAll(r, buf[:0])
		raw += len(r)
		packed += len(buf)
	}
	return float64(raw) / float64(packed)
}

// TestTrainDictionary checks the embedded dictionary and, with -train-dict,
// rebuilds it. It reports the compression of held-out records: a
// dictionary trained on the even records, measured on the odd ones.
func TestTrainDictionary(t *testing.T) {
	recs := trainingSet(t)
	if *trainDict {
		if err := os.WriteFile("../dict/zstd-dict-v1.bin", buildDict(t, recs, dictV1ID), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Skip("wrote ../dict/zstd-dict-v1.bin; rebuild the package and run again")
	}
	info, err := zstd.InspectDictionary(dictV1)
	if err != nil {
		t.Fatalf("the embedded dictionary does not load: %v", err)
	}
	if info.ID() != dictV1ID {
		t.Errorf("embedded dictionary ID = %d; want %d", info.ID(), dictV1ID)
	}
	var even, odd [][]byte
	for i, r := range recs {
		if i%2 == 0 {
			even = append(even, r)
		} else {
			odd = append(odd, r)
		}
	}
	held := buildDict(t, even, 1<<15+100)
	plain := ratio(t, odd)
	trained := ratio(t, odd, zstd.WithEncoderDict(held))
	embedded := ratio(t, recs, zstd.WithEncoderDict(dictV1))
	t.Logf("per-record zstd over %d real records: no dictionary %.2fx, held-out dictionary %.2fx, embedded dictionary (seen records) %.2fx",
		len(odd), plain, trained, embedded)
	if trained <= plain {
		t.Errorf("a trained dictionary compresses held-out records %.2fx, no better than none (%.2fx)", trained, plain)
	}
}

// TestCodecRoundTrip compresses every real record and a few odd inputs and
// checks the bytes come back exactly.
func TestCodecRoundTrip(t *testing.T) {
	for _, small := range []bool{false, true} {
		t.Run(fmt.Sprintf("zstd=%v", small), func(t *testing.T) { testCodecRoundTrip(t, small) })
	}
}

func testCodecRoundTrip(t *testing.T, small bool) {
	c, err := newCodec(small)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	inputs := [][]byte{nil, {}, []byte("{"), []byte("\x00\xff\xfe"), bytes.Repeat([]byte("ab"), 1<<19)}
	for _, r := range audittest.RealRecords(t) {
		inputs = append(inputs, r.Raw)
	}
	for i, in := range inputs {
		got, err := c.decompress(c.compress(nil, in))
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("input %d: round trip = %d bytes, %v; want %d bytes", i, len(got), err, len(in))
		}
	}
	// compressAll gives the frames compress gives; compress appends.
	all := c.compressAll(inputs)
	for i, in := range inputs {
		if want := c.compress(nil, in); !bytes.Equal(all[i], want) {
			t.Fatalf("input %d: compressAll frame differs from compress's", i)
		}
		if got := c.compress([]byte("pre"), in); !bytes.Equal(got, append([]byte("pre"), all[i]...)) {
			t.Fatalf("input %d: compress did not append to dst", i)
		}
	}
	// A store holds frames of both kinds: each codec reads the other's.
	other, err := newCodec(!small)
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	for i, in := range inputs[:20] {
		if got, err := c.decompress(other.compress(nil, in)); err != nil || !bytes.Equal(got, in) {
			t.Fatalf("input %d: frame of the other kind = %d bytes, %v", i, len(got), err)
		}
	}
	// Damaged frames are errors, never panics nor huge allocations.
	s2frame := newS2Frame(t, inputs[len(inputs)-1])
	for _, bad := range [][]byte{
		[]byte("not a zstd frame"),
		{frameS2V1},
		{frameS2V1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // length 2^63
		{frameS2V1, 0x80, 0x80, 0x80, 0x04},                                     // 8 MiB declared
		s2frame[:len(s2frame)/2],
		append(append([]byte{}, s2frame...), 0, 0, 0),
	} {
		if got, err := c.decompress(bad); err == nil {
			t.Errorf("decompress(%.20q) = %d bytes, no error", bad, len(got))
		}
	}
	// A frame made without a dictionary still decodes.
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	if got, err := c.decompress(enc.EncodeAll([]byte(`{"a":1}`), nil)); err != nil || string(got) != `{"a":1}` {
		t.Errorf("frame without dictionary = %q, %v", got, err)
	}
}

// newS2Frame returns the frameS2V1 frame of raw.
func newS2Frame(t *testing.T, raw []byte) []byte {
	t.Helper()
	c, err := newCodec(false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	f := c.compress(nil, raw)
	if len(f) == 0 || f[0] != frameS2V1 {
		t.Fatalf("S2 codec made a frame starting %x", f[:min(len(f), 4)])
	}
	return f
}
