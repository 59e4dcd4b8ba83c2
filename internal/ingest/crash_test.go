package ingest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/testproc"
)

// TestMain lets TestCrashLosesNoAcknowledgedRecord run this test binary as
// the child process it kills.
func TestMain(m *testing.M) {
	if dir := os.Getenv("CAIRN_INGEST_CRASH_CHILD"); dir != "" {
		os.Exit(crashChild(dir, os.Getenv("CAIRN_INGEST_CRASH_ROUND")))
	}
	os.Exit(m.Run())
}

func crashRecord(id string) audit.Record {
	raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"111111111111","accessKeyId":"AKIAALICE00000000001","userName":"alice"},"eventTime":"2026-12-02T15:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.10","userAgent":"crash-test","requestParameters":{"bucketName":"b","key":%q},"responseElements":null,"eventID":%q,"readOnly":true,"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111111111111","eventCategory":"Data"}`, id, id)
	rec, err := audit.Extract([]byte(raw))
	if err != nil {
		panic(err)
	}
	return rec
}

// crashChild opens the store and the journaled pipeline in dir (replaying
// what an earlier child left), then commits records from 8 goroutines
// forever, printing "ack ID" once each Commit has returned.
func crashChild(dir, round string) int {
	st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p, err := Open(context.Background(), Config{Store: st, JournalDir: filepath.Join(dir, "journal"), JournalSegmentSize: 64 << 10, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go p.Run(context.Background())
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				if err := p.Commit(context.Background(), crashRecord(id)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintln(out, "ack", id)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	fmt.Fprintln(os.Stderr, "child: committing")
	select {}
}

// TestCrashLosesNoAcknowledgedRecord runs a child process that commits
// records through a journaled pipeline into a real DuckDB store and kills
// it with SIGKILL at a random moment, several times on the same data dir;
// each new child replays the journal before committing. At the end every
// record whose Commit returned (the child printed its ID) is in the store.
func TestCrashLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CAIRN_INGEST_CRASH_CHILD="+dir, fmt.Sprintf("CAIRN_INGEST_CRASH_ROUND=%d", round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := testproc.Start(cmd); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of acknowledgements, then keep
		// reading: acks printed before the kill count too.
		killAt := 200 + rand.IntN(1500)
		sc := bufio.NewScanner(stdout)
		n := 0
		killed := false
		for sc.Scan() {
			id, ok := strings.CutPrefix(sc.Text(), "ack ")
			if !ok {
				continue
			}
			acked[id] = true
			if n++; n == killAt && !killed {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited after %d acks: %v\n%s", round, n, err, stderr.String())
		}
		t.Logf("round %d: SIGKILL after %d acknowledged records (%d so far)", round, n, len(acked))
		if strings.Contains(stderr.String(), "replayed the journal") {
			t.Logf("round %d: the child replayed the journal: %s", round, grepLine(stderr.String(), "replayed the journal"))
		}
	}
	// Open (the replay) the way the next start would, then read the store.
	st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := Open(t.Context(), Config{Store: st, JournalDir: filepath.Join(dir, "journal")}); err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for after := int64(0); ; {
		batch, err := st.ReadAppended(t.Context(), after, 5000)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, a := range batch {
			stored[a.Record.EventID]++
		}
		after = batch[len(batch)-1].Seq
	}
	var missing []string
	for id := range acked {
		if stored[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, c := range stored {
		if c > 1 {
			t.Errorf("record %s stored %d times", id, c)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged records missing from the store after the crashes, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
	}
	t.Logf("%d acknowledged records, all stored (%d in the store)", len(acked), len(stored))
	if n := segments(t, filepath.Join(dir, "journal")); n != 0 {
		t.Errorf("%d journal segments after the final replay; want 0", n)
	}
}

func grepLine(s, sub string) string {
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
