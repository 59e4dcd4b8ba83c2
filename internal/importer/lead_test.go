package importer

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

// TestLeadMatchesYield: records of a Records array taken in one pass
// (audit.ExtractLeading through parseLeading's lead) are the records, in
// the order and with the numbers, that the parse yields and Extract
// reads, through readers that cut the stream anywhere; and with the whole
// file buffered the lead takes nearly all of them.
func TestLeadMatchesYield(t *testing.T) {
	for i, data := range realFiles(t, 40) {
		raws, ok := oracle(data)
		if !ok {
			t.Fatalf("file %d: encoding/json rejects a real file", i)
		}
		var want []audit.Record
		for _, raw := range raws {
			rec, err := extract(bytes.Clone(raw))
			if err != nil {
				t.Fatalf("file %d: %v", i, err)
			}
			want = append(want, rec)
		}
		for name, r := range readers(data) {
			if name == "one-byte" && len(data) > 64<<10 {
				continue
			}
			var got []audit.Record
			taken := 0
			add := func(num int, rec audit.Record, err error) {
				if err != nil {
					t.Fatalf("file %d, %s: record %d: %v", i, name, num, err)
				}
				if num != len(got)+1 {
					t.Fatalf("file %d, %s: record %d after %d", i, name, num, len(got))
				}
				got = append(got, rec)
			}
			err := parseLeading(newReader(r, maxBuffer), func(num int, raw []byte, err error) bool {
				if err != nil {
					add(num, audit.Record{}, err)
				}
				rec, err := extract(bytes.Clone(raw))
				add(num, rec, err)
				return true
			}, func(num int, b []byte) (int, bool) {
				rec, n, ok := audit.ExtractLeading(b, bytes.Clone)
				if !ok {
					return 0, true
				}
				taken++
				add(num, rec, audit.CheckImported(&rec))
				for i := range b[:n] {
					b[i] = 'X' // the reader's buffer, reused: the record must not share it
				}
				return n, true
			})
			if err != nil {
				t.Fatalf("file %d, %s: %v", i, name, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("file %d, %s: %d records differ from the %d Extract reads", i, name, len(got), len(want))
			}
			if name == "whole" && taken < len(want)*9/10 {
				t.Errorf("file %d: the lead took %d of %d records; want at least 90%%", i, taken, len(want))
			}
		}
	}
}
