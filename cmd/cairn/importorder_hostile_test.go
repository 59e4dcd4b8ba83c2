package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// orderRecord is a valid record of account and region at t.
func orderRecord(id, account, region string, t time.Time) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`{"eventVersion":"1.08","eventTime":%s,"eventSource":"s3.amazonaws.com",`+
		`"eventName":"ListBuckets","awsRegion":%s,"eventID":%s,"recipientAccountId":%s,`+
		`"userIdentity":{"type":"IAMUser","accountId":%s,"userName":"u"}}`,
		q(t.Format(time.RFC3339)), q(region), q(id), q(account), q(account))
}

// TestInOrderImportKeepsAccountsApart: an offline import in order
// (`cairn import`: BeginImport, InOrder) of files that mix accounts and
// regions, hold invalid accounts and regions, go back in time after
// records in order and repeat event IDs across files (of one account:
// duplicates; of another: another record) stores exactly what an import
// not in order stores: each account's lookups, per region and across
// regions, see its own records and all of them, byte for byte.
func TestInOrderImportKeepsAccountsApart(t *testing.T) {
	const alice, bob = "111111111111", "222222222222"
	regions := []string{"us-east-1", "eu-west-1"}
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	logs := filepath.Join(t.TempDir(), "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	// want: account -> eventID -> raw, of what must be stored.
	want := map[string]map[string]string{alice: {}, bob: {}}
	var files [3][]string
	add := func(f int, id, account, region string, at time.Time, valid bool) {
		raw := orderRecord(id, account, region, at)
		files[f] = append(files[f], raw)
		if valid {
			if _, dup := want[account][id]; !dup {
				want[account][id] = raw
			}
		}
	}
	// 1.json: both accounts and regions interleaved, in time order.
	for i := range 300 {
		acct := []string{alice, bob}[i%2]
		add(0, fmt.Sprintf("e%03d", i), acct, regions[i/2%2], base.Add(time.Duration(i)*time.Minute), true)
	}
	// 2.json: later records, then ones older than all of 1.json; the
	// event IDs of 1.json again (alice's: duplicates; bob's IDs under
	// alice's account: records of their own); invalid accounts and
	// regions.
	for i := range 100 {
		add(1, fmt.Sprintf("late%03d", i), alice, regions[i%2], base.Add(time.Duration(400+i)*time.Minute), true)
	}
	for i := range 100 {
		add(1, fmt.Sprintf("early%03d", i), bob, regions[i%2], base.Add(-time.Duration(i+1)*time.Hour), true)
	}
	for i := range 300 {
		// e%03d of an even i is alice's: a duplicate; of an odd i bob's:
		// alice's own record with that ID.
		add(1, fmt.Sprintf("e%03d", i), alice, regions[i/2%2], base.Add(time.Duration(i)*time.Minute), true)
	}
	add(1, "bad-account", "11111111111x", regions[0], base, false)
	add(1, "bad-account-2", "1111111111111", regions[0], base, false)
	add(1, "bad-region", alice, "us-east-1/../x", base, false)
	add(1, "bad-region-2", bob, "", base, false)
	// 3.json: the same file again after the others, in order.
	files[2] = files[0]
	for f, recs := range files {
		writeFile(t, filepath.Join(logs, fmt.Sprintf("%d.json", f+1)), `{"Records":[`+strings.Join(recs, ",")+`]}`)
	}

	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "cairn.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(twoAccounts, 0))
	// In order: cairn import, as a user runs it (one batch here), and
	// as it runs with batches of 50, so that batches go back in time
	// after batches in order.
	inOrder := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"import", "--no-progress", "--no-compact", "--data-dir", inOrder, "--config", cfgPath, "--output", "json", logs}, &stdout, &stderr); code != exitRefused {
		t.Fatalf("cairn import: exit %d; want %d (4 records refused)\n%s\n%s", code, exitRefused, stdout.String(), stderr.String())
	}
	// importInto imports the files into a new store, begun as an import
	// (in order) or not, in batches of 50, sealing as it imports or not
	// (the records are of 2025: each batch's are sealed, and the
	// duplicates of 2.json are in blocks of earlier batches).
	importInto := func(begin, seal bool) string {
		dir := t.TempDir()
		st, err := duckdb.Open(filepath.Join(dir, storeFile), duckdb.Options{Cold: true, Seal: seal})
		if err != nil {
			t.Fatal(err)
		}
		if begin {
			st.BeginImport()
		}
		if _, err := importer.Run(context.Background(), []string{logs}, importer.Options{Sink: st, BatchSize: 50, Appenders: 2, InOrder: begin}); err != nil {
			t.Fatal(err)
		}
		if st.InOrder() {
			// 2.json goes back in time in a later batch; without
			// BeginImport a store is never InOrder.
			t.Errorf("an import (begun %v) that went back in time: InOrder", begin)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	inOrderBatches, notInOrder := importInto(true, false), importInto(false, false)
	sealedBatches := importInto(true, true)
	if fi, err := os.ReadDir(filepath.Join(sealedBatches, storeFile+".sealed")); err != nil || len(fi) == 0 {
		t.Fatalf("the import that seals left no segments: %v", err)
	}

	lookups := func(dir string) map[string][]string {
		st, err := duckdb.Open(filepath.Join(dir, storeFile), duckdb.Options{Cold: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		out := map[string][]string{}
		for _, acct := range []string{alice, bob, "11111111111x", "1111111111111"} {
			for _, region := range append(slices.Clone(regions), "", "us-east-1/../x") {
				q := audit.Query{Account: acct, Region: region, AnyRegion: region == "", Category: audit.CategoryManagement,
					Limit: 37, End: base.Add(24 * time.Hour)}
				key := acct + "/" + region
				for page := 0; ; page++ {
					p, err := st.Lookup(context.Background(), q)
					if err != nil {
						t.Fatalf("%s: Lookup(%+v): %v", dir, q, err)
					}
					for _, r := range p.Records {
						if r.Account != acct || region != "" && r.Region != region {
							t.Fatalf("%s: a lookup of %s answered %s's record %s of %s", dir, key, r.Account, r.EventID, r.Region)
						}
						out[key] = append(out[key], r.EventID+" "+string(r.Raw))
					}
					if p.Next == nil {
						break
					}
					if page > 1000 {
						t.Fatalf("%s: %s: more than 1000 pages", dir, key)
					}
					q.After = p.Next
				}
			}
		}
		return out
	}
	// The in-order store sealed by cairn compact (its records are of
	// 2025: every one sealed), then imported again: the sealed tier keeps
	// the accounts apart too, and its duplicate check is by account.
	sealedDir := t.TempDir()
	if err := os.CopyFS(sealedDir, os.DirFS(inOrder)); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"compact", "--data-dir", sealedDir, "--config", cfgPath}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "sealed)") || strings.Contains(stdout.String(), "(0 sealed)") {
		t.Fatalf("cairn compact: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"import", "--no-progress", "--data-dir", sealedDir, "--config", cfgPath, "--output", "json", logs}, &stdout, &stderr); code != exitRefused ||
		decodeImportReport(t, stdout.Bytes()).Imported != 0 {
		t.Fatalf("cairn import into the sealed store again: exit %d; want %d and nothing imported\n%s\n%s", code, exitRefused, stdout.String(), stderr.String())
	}
	got, other := lookups(inOrder), lookups(notInOrder)
	for name, dir := range map[string]string{"cairn import": inOrder, "in order, batches of 50": inOrderBatches, "sealed, imported again": sealedDir,
		"sealed as imported, batches of 50": sealedBatches} {
		got := got
		if dir != inOrder {
			got = lookups(dir)
		}
		for key := range other {
			if !slices.Equal(got[key], other[key]) {
				t.Errorf("%s: %s answers %d records, the import not in order %d", key, name, len(got[key]), len(other[key]))
			}
		}
	}
	for acct, ids := range want {
		var exact []string
		for id, raw := range ids {
			exact = append(exact, id+" "+raw)
		}
		slices.Sort(exact)
		all := slices.Clone(got[acct+"/"])
		slices.Sort(all)
		if !slices.Equal(all, exact) {
			t.Errorf("%s: %d records across regions; want exactly its %d", acct, len(all), len(exact))
		}
		if n := len(got[acct+"/us-east-1"]) + len(got[acct+"/eu-west-1"]); n != len(exact) {
			t.Errorf("%s: %d records in its two regions; want %d", acct, n, len(exact))
		}
	}
	for _, key := range []string{"11111111111x/", "1111111111111/", alice + "/us-east-1/../x"} {
		if len(got[key]) != 0 {
			t.Errorf("%s: %d records stored", key, len(got[key]))
		}
	}
}
