package duckdb

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// TestOldStoresGetDerivedResources: records stored by a cairn that did not
// derive resources (their Resources empty, as Extract gave them then) get
// the resources audit.DeriveResources finds once the store is opened by
// this version: ResourceName and ResourceType lookups find the Stratus Red
// Team user malicious-iam-user's CreateUser and AttachUserPolicy
// (testdata/real/invictus-ir-aws_dataset), the page carries them, and the
// pass runs once.
func TestOldStoresGetDerivedResources(t *testing.T) {
	var old []audit.Record
	var wantIDs []string
	for _, rr := range audittest.RealRecords(t) {
		r, err := audit.Extract(rr.Raw)
		if err != nil || r.Account != "123837392027" {
			continue
		}
		var has struct {
			Resources json.RawMessage `json:"resources"`
		}
		_ = json.Unmarshal(rr.Raw, &has)
		derived := len(r.Resources) > 0 && has.Resources == nil
		if derived {
			if slices.ContainsFunc(r.Resources, func(x audit.Resource) bool { return x.Name == "malicious-iam-user" }) && r.Category == audit.CategoryManagement {
				wantIDs = append(wantIDs, r.EventID)
			}
			r.Resources = nil // as an earlier version stored it
		}
		old = append(old, r)
	}
	if len(wantIDs) < 3 {
		t.Fatalf("%d records of malicious-iam-user; want CreateUser, AttachUserPolicy, CreateAccessKey...", len(wantIDs))
	}
	st, path := openTemp(t, old)
	// An earlier version's store: no migration recorded.
	if _, err := st.db.Exec(`DELETE FROM store_migrations`); err != nil {
		t.Fatal(err)
	}
	q := audit.Query{Account: "123837392027", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 50,
		Attributes: []audit.Attribute{{Key: audit.AttrResourceName, Value: "malicious-iam-user"}}}
	if got := lookupAll(t, st, q); len(got) != 0 {
		t.Fatalf("before the migration: %d records; want 0 (the test's old store is not old)", len(got))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second open finds the migration done
		st, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := lookupAll(t, st, q)
		var ids, names []string
		for _, r := range got {
			ids = append(ids, r.EventID)
			names = append(names, r.EventName)
			if !slices.ContainsFunc(r.Resources, func(x audit.Resource) bool { return x.Type == "AWS::IAM::User" && x.Name == "malicious-iam-user" }) {
				t.Errorf("%s: resources %+v", r.EventName, r.Resources)
			}
		}
		slices.Sort(ids)
		slices.Sort(wantIDs)
		if !slices.Equal(ids, wantIDs) || !slices.Contains(names, "CreateUser") || !slices.Contains(names, "AttachUserPolicy") {
			t.Errorf("ResourceName=malicious-iam-user: %v; want %d records with CreateUser and AttachUserPolicy", names, len(wantIDs))
		}
		qt := q
		qt.Attributes = []audit.Attribute{{Key: audit.AttrResourceType, Value: "AWS::IAM::Policy"}}
		if len(lookupAll(t, st, qt)) == 0 {
			t.Error("ResourceType=AWS::IAM::Policy finds nothing")
		}
		var n int
		if err := st.db.QueryRow(`SELECT count(*) FROM store_migrations`).Scan(&n); err != nil || n != 1 {
			t.Errorf("migrations recorded: %d %v; want 1", n, err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
