package duckdb

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestStagedKeysOwnStrings: the partitions the bucket index keeps (its
// partitions, the grown buckets a staged import rebuilds at Close) hold
// strings of their own, not the records': an importer's records are
// substrings of the slabs it read them into, and a key kept for the
// whole import pinned its slab (a 10M-record import kept about 2,700
// slabs, 285 MB, through its grown buckets; issue 15, session 17).
func TestStagedKeysOwnStrings(t *testing.T) {
	sh := storetest.NewShapes(t, 29)
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.BeginImport()
	// Each batch's account and region strings in a buffer of its own, as
	// the importer's slabs hold them.
	var slabs []string
	errs := make(chan error, 6)
	for i := range 6 {
		from := base.Add(time.Duration(i) * 20 * time.Hour)
		b := sh.Records(400, from, from.Add(30*time.Hour), "111111111111", "eu-west-1")
		b = append(b, sh.Records(200, from, from.Add(30*time.Hour), "222222222222", "us-east-1")...)
		slab := strings.Repeat("-", 64) + "111111111111eu-west-1222222222222us-east-1" + strings.Repeat("-", 64)
		slabs = append(slabs, slab)
		for j := range b {
			switch b[j].Account {
			case "111111111111":
				b[j].Account, b[j].Region = slab[64:76], slab[76:85]
			default:
				b[j].Account, b[j].Region = slab[85:97], slab[97:106]
			}
		}
		commit, err := st.StageEach(b)(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Committed concurrently, as an importer does: the next batch
		// is reserved while this one commits.
		go func() {
			ins, err := commit(ctx)
			for _, ok := range ins {
				if !ok && err == nil {
					err = errors.New("a new record not inserted")
				}
			}
			errs <- err
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	pinned := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		for _, slab := range slabs {
			lo := uintptr(unsafe.Pointer(unsafe.StringData(slab)))
			if p >= lo && p < lo+uintptr(len(slab)) {
				return true
			}
		}
		return false
	}
	st.writeMu.Lock()
	if len(st.staged.regrow) == 0 {
		st.writeMu.Unlock()
		t.Fatal("no bucket filter outgrew its size: the test does not cover the grown buckets")
	}
	for g := range st.staged.regrow {
		if pinned(g.k.account) || pinned(g.k.region) {
			t.Errorf("grown bucket %v %d holds a record's strings", g.k, g.d)
		}
	}
	st.writeMu.Unlock()
	st.index.mu.RLock()
	for k := range st.index.parts {
		if pinned(k.account) || pinned(k.region) {
			t.Errorf("partition %v holds a record's strings", k)
		}
	}
	st.index.mu.RUnlock()
}
