package trail

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

// addTrail is a registry change: a new trail named name.
func addTrail(name string) func(map[string]*Trail) error {
	return func(trails map[string]*Trail) error {
		t := &Trail{Name: name, Account: "111111111111", HomeRegion: "us-east-1"}
		if trails[t.ARN()] != nil {
			return audit.Errorf(audit.CodeTrailAlreadyExists, "exists")
		}
		trails[t.ARN()] = t
		return nil
	}
}

// The temporary files of a write cut by a crash are removed at open, and
// writes leave none behind: the fixed name of this version and the random
// names of earlier ones.
func TestRegistryLeavesNoTemporaryFiles(t *testing.T) {
	for _, left := range [][]string{
		nil,
		{"trails.json.tmp"},
		{"trails.json.tmp-123456"},
		{"trails.json.tmp", "trails.json.tmp-1", "trails.json.tmp-2981734"},
	} {
		t.Run(strings.Join(left, ","), func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range left {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(`[{"name": "half`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// An unrelated file stays.
			keep := filepath.Join(dir, "trails.jsonl")
			os.WriteFile(keep, nil, 0o600)
			r, err := OpenRegistry(dir)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := r.update(addTrail(fmt.Sprint("t", i))); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			ents, _ := os.ReadDir(dir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if len(names) != 2 || names[0] != "trails.json" || names[1] != "trails.jsonl" {
				t.Errorf("data dir holds %q; want only trails.json (and the unrelated trails.jsonl)", names)
			}
			r2, err := OpenRegistry(dir)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(r2.Trails()); n != 20 {
				t.Errorf("reopened registry has %d trails; want 20", n)
			}
		})
	}
}

// Concurrent changes share writes: the changes made while a write is under
// way are written together by the next one, and each caller returns only
// once the write holding its change is done.
func TestRegistryGroupCommit(t *testing.T) {
	r, err := OpenRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	release := make(chan struct{})
	var (
		mu     sync.Mutex
		writes [][]byte
	)
	r.save = func(b []byte) error {
		mu.Lock()
		n := len(writes)
		writes = append(writes, b)
		mu.Unlock()
		if n == 0 {
			close(first)
			<-release
		}
		return r.write(b)
	}
	done := make(chan error, 100)
	go func() { done <- r.update(addTrail("first")) }()
	<-first
	const n = 50
	var staged sync.WaitGroup
	for i := range n {
		staged.Add(1)
		go func() {
			// Staged once update has applied it: the registry's lock
			// is free again while the first write waits.
			done <- r.update(func(trails map[string]*Trail) error {
				defer staged.Done()
				return addTrail(fmt.Sprint("t", i))(trails)
			})
		}()
	}
	staged.Wait()
	select {
	case err := <-done:
		t.Fatalf("a change returned (%v) before the write holding it", err)
	default:
	}
	if got := len(r.Trails()); got != 0 {
		t.Errorf("readers see %d trails before any write ended; want 0 (they see what is written)", got)
	}
	close(release)
	for range n + 1 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writes) != 2 {
		t.Errorf("%d writes for %d changes; want 2: the first, then the %d staged during it together", len(writes), n+1, n)
	}
	if got := len(r.Trails()); got != n+1 {
		t.Errorf("registry has %d trails; want %d", got, n+1)
	}
}

// A failed write fails every change it holds, and those staged on top of
// them; the registry stays as last written, and a full disk is answered
// ServiceUnavailable. The next change after the failure is written.
func TestRegistryFailedWriteChangesNothing(t *testing.T) {
	r, err := OpenRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.update(addTrail("kept")); err != nil {
		t.Fatal(err)
	}
	// The first write waits for release, then every write fails as on a
	// full disk while full is set.
	first := make(chan struct{})
	release := make(chan struct{})
	var (
		mu    sync.Mutex
		calls int
		full  = true
	)
	dir := filepath.Dir(r.path)
	r.save = func(b []byte) error {
		mu.Lock()
		calls++
		n, f := calls, full
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release
		}
		if f {
			return saveError(&os.PathError{Op: "write", Path: filepath.Join(dir, registryTemp), Err: syscall.ENOSPC})
		}
		return r.write(b)
	}
	done := make(chan error, 10)
	go func() { done <- r.update(addTrail("a")) }()
	<-first
	var staged sync.WaitGroup
	staged.Add(1)
	go func() {
		done <- r.update(func(trails map[string]*Trail) error {
			defer staged.Done()
			return addTrail("b")(trails)
		})
	}()
	staged.Wait()
	close(release)
	for range 2 {
		err := <-done
		if audit.ErrorCode(err) != audit.CodeServiceUnavailable {
			t.Errorf("update on a full disk = %v; want ServiceUnavailable", err)
		}
	}
	if got := r.Trails(); len(got) != 1 || got[0].Name != "kept" {
		t.Errorf("registry after failed writes = %v; want only the trail written before", got)
	}
	mu.Lock()
	full = false
	mu.Unlock()
	if err := r.update(addTrail("b")); err != nil {
		t.Fatalf("update once the disk has room = %v", err)
	}
	r2, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.Trails(); len(got) != 2 {
		t.Errorf("reopened registry has %d trails; want kept and b", len(got))
	}
}

// A trail saved with advanced selectors PutEventSelectors refuses today
// is loaded, named in a warning and keeps selecting as before; a trail
// with valid selectors is not named.
func TestRegistryKeepsRefusedSelectors(t *testing.T) {
	dir := t.TempDir()
	saved := `[
 {"name":"old","account":"111111111111","homeRegion":"us-east-1","s3BucketName":"logs","logging":true,"position":0,"customSelectors":true,
  "advancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"readOnly","StartsWith":["t"]}]}]},
 {"name":"fine","account":"111111111111","homeRegion":"us-east-1","s3BucketName":"logs","logging":true,"position":0,"customSelectors":true,
  "advancedEventSelectors":[{"Name":"writes","FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"readOnly","Equals":["false"]}]}]}
]`
	if err := os.WriteFile(filepath.Join(dir, registryFile), []byte(saved), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	if n := r.WarnRefusedSelectors(slog.New(slog.NewTextHandler(&logs, nil))); n != 1 {
		t.Errorf("WarnRefusedSelectors = %d; want 1", n)
	}
	if !strings.Contains(logs.String(), "trail/old") || strings.Contains(logs.String(), "trail/fine") {
		t.Errorf("the warning does not name the trail old alone:\n%s", logs.String())
	}
	read := rec(t, "111111111111", "us-east-1", "ec2.amazonaws.com", "DescribeInstances", true, "")
	write := rec(t, "111111111111", "us-east-1", "ec2.amazonaws.com", "RunInstances", false, "")
	got := map[string][2]bool{}
	for _, tr := range r.trails {
		got[tr.Name] = [2]bool{tr.Selects(&read), tr.Selects(&write)}
	}
	if got["old"] != [2]bool{true, false} || got["fine"] != [2]bool{false, true} {
		t.Errorf("selection after load (read, write) = %v; want old {true false}, fine {false true}", got)
	}
}
