package duckdb

import (
	"os"
	"testing"
)

// TestKeptKeys: the keys an import keeps come back as they were added, in
// order, from the file (across its buffer's edges) and from memory; the
// file is gone from the directory while it is written.
func TestKeptKeys(t *testing.T) {
	tmp := t.TempDir()
	for _, dir := range []string{tmp, ""} {
		k := newKeptKeys(dir)
		if (k.f != nil) != (dir != "") {
			t.Fatalf("in %q: a file %v", dir, k.f != nil)
		}
		var want []uint64
		for round := range 3 {
			batch := make([]uint64, 3*keptKeysBuf+round*7+1)
			for i := range batch {
				batch[i] = uint64(len(want)+i)*0x9e3779b97f4a7c15 + 1
			}
			if !k.add(batch) {
				t.Fatal("add failed")
			}
			want = append(want, batch...)
			var got []uint64
			if err := k.each(func(h uint64) { got = append(got, h) }); err != nil {
				t.Fatal(err)
			}
			if k.len() != len(want) || len(got) != len(want) {
				t.Fatalf("round %d: %d keys read back, len %d; want %d", round, len(got), k.len(), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("round %d: key %d = %x, want %x", round, i, got[i], want[i])
				}
			}
		}
		k.close()
	}
	if es, err := os.ReadDir(tmp); err != nil || len(es) != 0 {
		t.Errorf("the directory holds %d files (%v); want none", len(es), err)
	}
}

// TestKeptKeysWriteFails: when the file cannot be written the list is
// empty and says so (the import then forgets which blocks it held).
func TestKeptKeysWriteFails(t *testing.T) {
	k := newKeptKeys(t.TempDir())
	if k.f == nil {
		t.Fatal("no file")
	}
	k.f.Close() // every write fails from now on
	batch := make([]uint64, keptKeysBuf)
	if k.add(batch) {
		t.Fatal("add of a full buffer to a closed file succeeded")
	}
	if k.len() != 0 {
		t.Errorf("len %d after a failed write, want 0", k.len())
	}
	n := 0
	if err := k.each(func(uint64) { n++ }); err != nil || n != 0 {
		t.Errorf("each after a failed write: %d keys, %v; want none", n, err)
	}
	if k.add(batch[:1]) {
		t.Error("add after a failed write succeeded")
	}
}
