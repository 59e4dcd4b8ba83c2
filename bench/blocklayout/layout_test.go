package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

var testOpts = Options{BlockBytes: 16 << 10, BitsPerValue: 10, IDBits: 10, GroupHours: 1, Level: zstd.SpeedDefault}

// TestBlockRoundTrip: a block's records come back as they went in, newest
// first, with the IDs and times the JSON holds taken from it and those it
// does not (no eventID, another eventTime) kept in the block.
func TestBlockRoundTrip(t *testing.T) {
	sh := storetest.NewShapes(t, 3)
	base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	recs := sh.Records(40, base, base.Add(time.Hour-time.Second), "111111111111", "eu-west-1")
	// Two records of one second: the ID orders them.
	recs[1].Time = recs[0].Time
	noID := &recs[2]
	noID.Raw = bytes.Replace(noID.Raw, []byte(`"eventID":"`), []byte(`"eventXX":"`), 1)
	otherTime := &recs[3]
	otherTime.Time = otherTime.Time.Add(time.Second)
	if !bytes.Contains(recs[4].Raw, []byte(`"eventID":"`+recs[4].EventID+`"`)) {
		t.Fatalf("shape without its eventID: %s", recs[4].Raw)
	}
	var ptrs []*audit.Record
	for i := range recs {
		ptrs = append(ptrs, &recs[i])
	}
	for _, idColumn := range []bool{false, true} {
		opts := testOpts
		opts.IDColumn = idColumn
		content, m, ids, times := encodeBlock(slices.Clone(ptrs), opts)
		wantIDs, wantTimes := 1, 1
		if idColumn {
			wantIDs, wantTimes = len(recs), len(recs)
		}
		if ids < wantIDs || times < wantTimes || !idColumn && (ids > 2 || times > 2) {
			t.Errorf("idColumn %v: IDs kept %d, times %d; want %d and %d", idColumn, ids, times, wantIDs, wantTimes)
		}
		enc, err := newEncoder(opts.Level)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := newDecoder()
		if err != nil {
			t.Fatal(err)
		}
		plain, err := dec.DecodeAll(enc.EncodeAll(content, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeBlock(plain, &m)
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(recs)
		slices.SortFunc(want, func(a, b audit.Record) int { return newer(&a, &b) })
		if err := samePage(got, want); err != nil {
			t.Errorf("idColumn %v: %v", idColumn, err)
		}
		for _, r := range recs {
			if !m.idFilter.Has(sealed.Token(audit.AttrEventID, r.EventID)) || !m.filter.Has(sealed.Token(audit.AttrEventName, r.EventName)) {
				t.Errorf("filter misses %s %s", r.EventID, r.EventName)
			}
		}
		if _, err := decodeBlock(plain[:len(plain)-1], &m); err == nil {
			t.Error("a cut block decoded")
		}
		enc.Close()
		dec.Close()
	}
}

// TestSameAnswers: on a small store, every query of every kind gets the
// page Lookup gives, and some of them are not empty.
func TestSameAnswers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sh := storetest.NewShapes(t, 5)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for day := range 10 {
		from := base.Add(time.Duration(day) * 24 * time.Hour)
		recs := sh.Records(300, from, from.Add(24*time.Hour), "111111111111", "eu-west-1")
		recs = append(recs, sh.Records(40, from, from.Add(24*time.Hour), "222222222222", "us-east-1")...)
		if _, err := st.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	for _, side := range []bool{false, true} {
		opts := testOpts
		opts.SideFile = side
		out := filepath.Join(dir, fmt.Sprintf("blocks-%v.duckdb", side))
		smp, err := build(ctx, st, out, false, opts, 1)
		if err != nil {
			t.Fatal(err)
		}
		if smp.records != 3400 {
			t.Fatalf("read %d records; want 3400", smp.records)
		}
		// A run with -reuse takes the same queries from the saved sample.
		again, err := loadSample(out + ".sample")
		if err != nil {
			t.Fatal(err)
		}
		if a, b := fmt.Sprint(again.queries(10, 1)), fmt.Sprint(smp.queries(10, 1)); a != b || again.records != smp.records {
			t.Errorf("the saved sample's queries differ")
		}
		rd, err := openReader(ctx, out, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		full := 0
		for _, x := range smp.queries(10, 1) {
			page, err := st.Lookup(ctx, x.q)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := rd.lookup(ctx, &x.q)
			if err != nil {
				t.Fatal(err)
			}
			if err := samePage(got, page.Records); err != nil {
				t.Errorf("side file %v, %s %+v: %v", side, x.kind, x.q.Attributes, err)
			}
			if len(got) > 0 {
				full++
			}
		}
		rd.Close()
		if full < 50 {
			t.Errorf("side file %v: %d pages not empty; want at least 50", side, full)
		}
		if got := fileSize(out + ".data"); side != (got > 0) {
			t.Errorf("side file %v: FILE.data of %d bytes", side, got)
		}
	}
}
