// Package statetest is the conformance suite every audit.StateStore
// adapter runs (statefile, the PostgreSQL store's State): versions,
// compare-and-swap, hostile keys, listing by prefix, concurrent writers.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Run runs the suite on st, a store holding nothing under the prefix "t".
func Run(t *testing.T, st audit.StateStore) {
	ctx := context.Background()
	t.Run("AbsentIsVersionZero", func(t *testing.T) {
		b, v, err := st.Get(ctx, "t-absent")
		if err != nil || v != 0 || b != nil {
			t.Fatalf("Get(absent) = %q, %d, %v; want nil, 0, nil", b, v, err)
		}
		if v, err := st.Version(ctx, "t-absent"); err != nil || v != 0 {
			t.Fatalf("Version(absent) = %d, %v; want 0, nil", v, err)
		}
		if err := st.Delete(ctx, "t-absent", 0); err != nil {
			t.Fatalf("Delete(absent, 0) = %v; want nil", err)
		}
	})
	t.Run("PutGetCAS", func(t *testing.T) {
		v1, err := st.Put(ctx, "t-cas", []byte("one"), 0)
		if err != nil || v1 <= 0 {
			t.Fatalf("Put(new) = %d, %v", v1, err)
		}
		if _, err := st.Put(ctx, "t-cas", []byte("again"), 0); !errors.Is(err, audit.ErrStateConflict) {
			t.Fatalf("Put(existing, 0) = %v; want ErrStateConflict", err)
		}
		v2, err := st.Put(ctx, "t-cas", []byte("two"), v1)
		if err != nil || v2 <= v1 {
			t.Fatalf("Put(v1) = %d, %v; want > %d", v2, err, v1)
		}
		for _, stale := range []int64{v1, v2 + 1, -1} {
			if _, err := st.Put(ctx, "t-cas", []byte("lost"), stale); !errors.Is(err, audit.ErrStateConflict) {
				t.Fatalf("Put(version %d of %d) = %v; want ErrStateConflict", stale, v2, err)
			}
			if err := st.Delete(ctx, "t-cas", stale); !errors.Is(err, audit.ErrStateConflict) {
				t.Fatalf("Delete(version %d of %d) = %v; want ErrStateConflict", stale, v2, err)
			}
		}
		b, v, err := st.Get(ctx, "t-cas")
		if err != nil || v != v2 || string(b) != "two" {
			t.Fatalf("Get = %q, %d, %v; want two, %d", b, v, err, v2)
		}
		if v, err := st.Version(ctx, "t-cas"); err != nil || v != v2 {
			t.Fatalf("Version = %d, %v; want %d", v, err, v2)
		}
		if err := st.Delete(ctx, "t-cas", v2); err != nil {
			t.Fatal(err)
		}
		// Created again: a version never seen, so a reader of v1 or v2
		// cannot overwrite it.
		v3, err := st.Put(ctx, "t-cas", []byte("three"), 0)
		if err != nil || v3 == v1 || v3 == v2 {
			t.Fatalf("Put(recreated) = %d, %v; want a new version (had %d, %d)", v3, err, v1, v2)
		}
	})
	t.Run("BytesKept", func(t *testing.T) {
		for i, val := range [][]byte{{}, {0}, []byte("\xff\xfe\x00nul"), bytes.Repeat([]byte("x"), 1<<20)} {
			key := fmt.Sprintf("t-bytes-%d", i)
			if _, err := st.Put(ctx, key, val, 0); err != nil {
				t.Fatal(err)
			}
			b, v, err := st.Get(ctx, key)
			if err != nil || v == 0 || !bytes.Equal(b, val) {
				t.Fatalf("Get(%s) = %d bytes, %d, %v; want %d bytes back", key, len(b), v, err, len(val))
			}
		}
	})
	t.Run("HostileKeys", func(t *testing.T) {
		for _, key := range []string{"", "../escape", "a/../../b", "/abs", "a//b", ".hidden", "a/.hidden", "nul\x00", "sp ace",
			"é", "back\\slash", strings.Repeat("k", 201), "a/"} {
			if _, _, err := st.Get(ctx, key); !errors.Is(err, audit.ErrStateKey) {
				t.Errorf("Get(%q) = %v; want ErrStateKey", key, err)
			}
			if _, err := st.Put(ctx, key, []byte("x"), 0); !errors.Is(err, audit.ErrStateKey) {
				t.Errorf("Put(%q) = %v; want ErrStateKey", key, err)
			}
			if err := st.Delete(ctx, key, 0); !errors.Is(err, audit.ErrStateKey) {
				t.Errorf("Delete(%q) = %v; want ErrStateKey", key, err)
			}
		}
	})
	t.Run("ListByPrefix", func(t *testing.T) {
		for _, k := range []string{"tlist/b", "tlist/a", "tlist/c/d", "tlistx", "tlis"} {
			if _, err := st.Put(ctx, k, []byte(k), 0); err != nil {
				t.Fatal(err)
			}
		}
		got, err := st.List(ctx, "tlist/")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range got {
			keys = append(keys, e.Key)
			if string(e.Value) != e.Key || e.Version == 0 {
				t.Errorf("List entry %q = %q v%d", e.Key, e.Value, e.Version)
			}
		}
		if want := "tlist/a tlist/b tlist/c/d"; strings.Join(keys, " ") != want {
			t.Fatalf("List(tlist/) = %v; want %s", keys, want)
		}
		if got, err := st.List(ctx, "tnone/"); err != nil || len(got) != 0 {
			t.Fatalf("List(tnone/) = %v, %v; want none", got, err)
		}
	})
	t.Run("ConcurrentWritersNoLostUpdate", func(t *testing.T) {
		// Each writer adds one to a counter through read, CAS, retry: the
		// sum shows whether a Put ever overwrote a change it did not read.
		const writers, each = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					for {
						b, v, err := st.Get(ctx, "t-counter")
						if err != nil {
							errs <- err
							return
						}
						n := 0
						fmt.Sscan(string(b), &n)
						_, err = st.Put(ctx, "t-counter", []byte(fmt.Sprint(n+1)), v)
						if errors.Is(err, audit.ErrStateConflict) {
							continue
						}
						if err != nil {
							errs <- err
							return
						}
						break
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		b, _, _ := st.Get(ctx, "t-counter")
		if string(b) != fmt.Sprint(writers*each) {
			t.Fatalf("counter = %s; want %d (a lost update)", b, writers*each)
		}
	})
}
