package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// writeServerInfo writes dataDir's server file naming pid and endpoint,
// with mode perm.
func writeServerInfo(t *testing.T, dataDir string, pid int, endpoint string, perm os.FileMode) {
	t.Helper()
	b, _ := json.Marshal(serverInfo{PID: pid, Endpoint: endpoint})
	path := filepath.Join(dataDir, serverFile)
	if err := os.WriteFile(path, b, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

// TestServerFileOfNoServerIsNotBelieved: import, query and insights send
// records and signed requests to the server a data dir's server file
// names. A file a server of this user could not have written (an endpoint
// on another host or not http://IP:PORT, a file others may write) names no
// server; the file serve writes does.
func TestServerFileOfNoServerIsNotBelieved(t *testing.T) {
	pid := os.Getpid() // a live process of ours
	for _, tc := range []struct {
		endpoint string
		perm     os.FileMode
		held     bool
	}{
		{"http://127.0.0.1:4579", 0o600, true},
		{"http://[::1]:4579", 0o600, true},
		{"http://0.0.0.0:4579", 0o600, true},
		{"http://[::]:4579", 0o644, true},
		{"http://127.0.0.1:4579", 0o666, false},    // anyone may write it
		{"http://127.0.0.1:4579", 0o620, false},    // the group may write it
		{"http://192.0.2.1:4579", 0o600, false},    // another host
		{"http://evil.example:4579", 0o600, false}, // a name, resolved anywhere
		{"http://localhost.evil.example:80", 0o600, false},
		{"https://127.0.0.1:4579", 0o600, false},
		{"http://user:pw@127.0.0.1:4579", 0o600, false},
		{"http://127.0.0.1", 0o600, false},
		{"http://127.0.0.1:4579/x?y", 0o600, false},
		{"http://127.0.0.1:4579\x1b[2J", 0o600, false}, // a terminal escape in the messages that name it
		{"", 0o600, false},
	} {
		dataDir := t.TempDir()
		writeServerInfo(t, dataDir, pid, tc.endpoint, tc.perm)
		got := serverHolding(dataDir)
		if held := got != ""; held != tc.held {
			t.Errorf("server file %q (mode %v): serverHolding = %q, want held %v", tc.endpoint, tc.perm, got, tc.held)
		}
	}
	// A folder, or a file naming a process that is gone, names no server.
	dataDir := t.TempDir()
	os.Mkdir(filepath.Join(dataDir, serverFile), 0o700)
	if got := serverHolding(dataDir); got != "" {
		t.Errorf("server file that is a folder: %q", got)
	}
}

// TestImportGoesThroughNoServerAFileItMayNotTrustNames: `cairn import`
// into a data dir whose server file others may write does not send the
// records, or requests signed with the caller's AWS credentials, to the
// endpoint it names: it imports into the data dir itself.
func TestImportGoesThroughNoServerAFileItMayNotTrustNames(t *testing.T) {
	var calls atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer evil.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAVICTIM0000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "victim-secret")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.json"), `{"Records":[`+importRecord("a", "111111111111", "us-east-1")+`]}`)
	dataDir := t.TempDir()
	cfg := filepath.Join(dataDir, "cairn.yaml")
	writeFile(t, cfg, fmt.Sprintf(twoAccounts, 0))
	writeServerInfo(t, dataDir, os.Getpid(), evil.URL, 0o666)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"import", "--no-progress", "--data-dir", dataDir, "--config", cfg, dir}, &stdout, &stderr)
	if n := calls.Load(); n != 0 || code != 0 || strings.Contains(stderr.String(), "importing through") {
		t.Errorf("import with a server file others may write: %d calls to the endpoint it names, exit %d\n%s%s", n, code, stdout.String(), stderr.String())
	}
}
