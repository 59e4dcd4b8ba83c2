package importer

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
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

// TestLeadHostileRecords: records made to split a one-pass reader from
// the full decoder (duplicate members naming two accounts, escapes in
// the account and region, an account only in userIdentity, a region that
// walks paths, oversized and deeply nested values, a record cut short)
// come out of a Records array exactly as Extract reads them alone: the
// same account, region and ID, or the same refusal. What the lead takes
// it must take as Extract would; what it leaves goes to Extract.
func TestLeadHostileRecords(t *testing.T) {
	const base = `"eventVersion":"1.08","eventTime":"2026-12-03T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"%s"`
	rec := func(id, rest string) string { return `{` + fmt.Sprintf(base, id) + rest + `}` }
	hostile := []string{
		rec("dup-account", `,"awsRegion":"us-east-1","recipientAccountId":"111111111111","recipientAccountId":"222222222222"`),
		rec("dup-region", `,"awsRegion":"us-east-1","awsRegion":"eu-west-1","recipientAccountId":"111111111111"`),
		rec("dup-id", `,"eventID":"other","awsRegion":"us-east-1","recipientAccountId":"111111111111"`),
		rec("escaped-account", `,"awsRegion":"us-east-1","recipientAccountId":"\u0032\u0032\u0032222222222"`),
		rec("escaped-region", `,"awsRegion":"us\u002deast-1","recipientAccountId":"111111111111"`),
		rec("identity-only", `,"awsRegion":"us-east-1","userIdentity":{"type":"IAMUser","accountId":"222222222222"}`),
		rec("both-accounts", `,"awsRegion":"us-east-1","userIdentity":{"accountId":"222222222222"},"recipientAccountId":"111111111111"`),
		rec("empty-recipient", `,"awsRegion":"us-east-1","recipientAccountId":"","userIdentity":{"accountId":"222222222222"}`),
		rec("path-region", `,"awsRegion":"us-east-1/../x","recipientAccountId":"111111111111"`),
		rec("escape-region", `,"awsRegion":"\u001b[31mred","recipientAccountId":"111111111111"`),
		rec("short-account", `,"awsRegion":"us-east-1","recipientAccountId":"11111111111"`),
		rec("number-account", `,"awsRegion":"us-east-1","recipientAccountId":111111111111`),
		rec("null-account", `,"awsRegion":"us-east-1","recipientAccountId":null,"userIdentity":{"accountId":"222222222222"}`),
		rec(strings.Repeat("i", 300), `,"awsRegion":"us-east-1","recipientAccountId":"111111111111"`),
		rec("deep", `,"awsRegion":"us-east-1","recipientAccountId":"111111111111","requestParameters":`+strings.Repeat(`{"a":`, 5000)+`1`+strings.Repeat(`}`, 5000)),
		rec("big", `,"awsRegion":"us-east-1","recipientAccountId":"111111111111","requestParameters":{"x":"`+strings.Repeat("y", audit.MaxRecordSize)+`"}`),
		`{"eventID":"no-time","awsRegion":"us-east-1","recipientAccountId":"111111111111"}`,
		`{"eventID":"bad-utf8","eventTime":"2026-12-03T10:00:00Z","awsRegion":"us-east-1","recipientAccountId":"111111111111","eventName":"` + "\xff\xfe" + `"}`,
	}
	for _, h := range hostile {
		name := h[:min(len(h), 120)]
		want, wantErr := extract([]byte(h))
		data := []byte(`{"Records":[` + h + `]}`)
		var got audit.Record
		var gotErr error
		n := 0
		err := parseLeading(newReader(bytes.NewReader(data), maxBuffer), func(num int, raw []byte, err error) bool {
			n++
			if err == nil {
				got, err = extract(bytes.Clone(raw))
			}
			gotErr = err
			return true
		}, func(num int, b []byte) (int, bool) {
			rec, k, ok := audit.ExtractLeading(b, bytes.Clone)
			if !ok {
				return 0, true
			}
			n++
			got, gotErr = rec, audit.CheckImported(&rec)
			return k, true
		})
		if err != nil {
			// The file itself refused (a record too big or too deep for
			// the reader): nothing imported from it.
			if n != 0 && gotErr == nil {
				t.Errorf("%s: the file failed (%v) after a record was taken", name, err)
			}
			continue
		}
		if n != 1 {
			t.Fatalf("%s: %d records; want 1", name, n)
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%s: through the array err %v; alone %v", name, gotErr, wantErr)
			continue
		}
		if gotErr == nil && (got.Account != want.Account || got.Region != want.Region || got.EventID != want.EventID || !bytes.Equal(got.Raw, want.Raw)) {
			t.Errorf("%s: through the array %s/%s/%s; alone %s/%s/%s", name, got.Account, got.Region, got.EventID, want.Account, want.Region, want.EventID)
		}
	}
}
