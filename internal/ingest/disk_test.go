package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// syncBuffer is a bytes.Buffer for a logger shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A store failing for a full disk, in each way the store and the OS say
// so: writes are refused at once (ServiceUnavailable, not after retries),
// reads are admitted and their records kept, journaled records stay and
// are stored once the disk has room, with a log line and the gauge.
func TestDiskFullRefusesWritesAndRecovers(t *testing.T) {
	for _, full := range []error{
		&fs.PathError{Op: "write", Path: "events.duckdb.wal", Err: syscall.ENOSPC},
		fmt.Errorf("duckdb: commit: %w", errors.New("IO Error: Could not write file \"events.duckdb.wal\": No space left on device")),
		&fs.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT},
	} {
		t.Run(full.Error(), func(t *testing.T) {
			st := &gatedEach{MemStore: audittest.NewMemStore()}
			st.setErr(full)
			var logs syncBuffer
			reg := prometheus.NewRegistry()
			p, _, _ := openJournaled(t, Config{Store: st, JournalDir: t.TempDir(), MinFreeBytes: -1,
				DiskCheckInterval: 5 * time.Millisecond, MaxDelay: time.Millisecond, JournalDelay: time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg})
			const acct = "111111111111"
			// A Commit is journaled, acknowledged; its store append
			// fails for the full disk.
			if err := p.Commit(t.Context(), acctRecs(acct, 0, 3)...); err != nil {
				t.Fatalf("Commit = %v", err)
			}
			waitFor(t, "the disk to be seen full", func() bool { return admitErr(p.Admit(acct, true)) != nil })
			if err := admitErr(p.Admit(acct, true)); audit.ErrorCode(err) != audit.CodeServiceUnavailable || !errors.Is(err, ErrDiskFull) {
				t.Errorf("Admit(write) on a full disk = %v; want ServiceUnavailable wrapping ErrDiskFull", err)
			}
			if err := admitErr(p.Admit(acct, false)); err != nil {
				t.Errorf("Admit(read) on a full disk = %v; want nil: reads go on", err)
			}
			if got := gauge(t, reg, "cairn_ingest_disk_full"); got != 1 {
				t.Errorf("cairn_ingest_disk_full = %v; want 1", got)
			}
			if !strings.Contains(logs.String(), "the disk is full") {
				t.Errorf("no log line says the disk is full:\n%s", logs.String())
			}
			// A Submit (ImportRecords) fails at once, not after
			// MaxAttempts tries.
			st.mu.Lock()
			before := st.appends
			st.mu.Unlock()
			if _, err := p.Submit(t.Context(), acctRecs(acct, 100, 2)...); audit.ErrorCode(err) != audit.CodeServiceUnavailable {
				t.Errorf("Submit on a full disk = %v; want ServiceUnavailable", err)
			}
			// Read calls' records are queued without blocking.
			for i := range 20 {
				if err := p.Enqueue(t.Context(), acctRecs(acct, 200+i, 1)...); err != nil {
					t.Fatal(err)
				}
			}
			st.mu.Lock()
			tries := st.appends - before
			st.mu.Unlock()
			if tries > 3 {
				t.Errorf("%d appends tried for one Submit and retries; want the full disk to end them", tries)
			}
			// Space freed: the journaled and queued records are
			// stored, and writes are admitted again.
			st.setErr(nil)
			waitFor(t, "the acknowledged records stored", func() bool {
				page, _ := st.Lookup(t.Context(), audit.Query{Account: acct, Limit: 100})
				return len(page.Records) == 23
			})
			waitFor(t, "writes admitted again", func() bool { return admitErr(p.Admit(acct, true)) == nil })
			if got := gauge(t, reg, "cairn_ingest_disk_full"); got != 0 {
				t.Errorf("cairn_ingest_disk_full = %v after recovery; want 0", got)
			}
			if _, err := p.Submit(t.Context(), acctRecs(acct, 100, 2)...); err != nil {
				t.Errorf("Submit after recovery = %v", err)
			}
		})
	}
}

// The free space below MinFreeBytes refuses writes before any write
// fails; it is read from DiskDir.
func TestFreeSpaceFloor(t *testing.T) {
	p := New(Config{Store: &fakeStore{}, DiskDir: t.TempDir(), MinFreeBytes: 1 << 62})
	if err := admitErr(p.Admit("111111111111", true)); audit.ErrorCode(err) != audit.CodeServiceUnavailable {
		t.Errorf("Admit(write) with less free space than the floor = %v; want ServiceUnavailable", err)
	}
	p = New(Config{Store: &fakeStore{}, DiskDir: t.TempDir(), MinFreeBytes: 1})
	if err := admitErr(p.Admit("111111111111", true)); err != nil {
		t.Errorf("Admit(write) with room = %v; want nil", err)
	}
}

// gauge returns the value of the gauge name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// admitErr is Admit's error; an admission is released at once.
func admitErr(release func(), err error) error {
	if release != nil {
		release()
	}
	return err
}

// Where the free space explains a failed write (under a MiB free), a later
// write that fits in the last free bytes does not clear the full state: a
// reading with room does. Where it does not explain it (a quota, inodes:
// plenty free by the reading), a write that succeeds does. Neither resumes
// writes below the floor.
func TestDiskFullClearedByWhatExplainsIt(t *testing.T) {
	enospc := &fs.PathError{Op: "write", Path: "journal", Err: syscall.ENOSPC}
	newDisk := func(minFree int64, free *int64) *disk {
		d := &disk{}
		d.init(&Config{DiskDir: "/unused", MinFreeBytes: minFree, DiskCheckInterval: time.Nanosecond,
			Logger: slog.New(slog.DiscardHandler)})
		d.freeBytes = func(string) (int64, bool) { return *free, true }
		return d
	}
	t.Run("full by the reading", func(t *testing.T) {
		free := int64(4096)
		d := newDisk(0, &free)
		d.setFull(enospc)
		d.wrote() // a small frame fit in the journal's last page
		if !d.full() {
			t.Fatal("a write that fit in the last 4 KiB cleared the full state")
		}
		free = 512 << 10 // freed, but less than a MiB more
		if !d.full() {
			t.Fatal("cleared with under a MiB more free than at the failure")
		}
		free = 64 << 20
		if d.full() {
			t.Fatal("still full with 64 MiB free")
		}
	})
	t.Run("full by a quota", func(t *testing.T) {
		free := int64(10 << 30)
		d := newDisk(0, &free)
		d.setFull(&fs.PathError{Op: "write", Path: "journal", Err: syscall.EDQUOT})
		if !d.full() {
			t.Fatal("not full after a write failed")
		}
		d.wrote()
		if d.full() {
			t.Fatal("a successful write did not clear a full state the free space cannot tell")
		}
	})
	t.Run("below the floor", func(t *testing.T) {
		free := int64(8 << 20)
		d := newDisk(16<<20, &free)
		if !d.full() {
			t.Fatal("not full below the floor")
		}
		d.wrote()
		if !d.full() {
			t.Fatal("a write cleared the state below the floor")
		}
		free = 32 << 20
		if d.full() {
			t.Fatal("still full above the floor")
		}
	})
}
