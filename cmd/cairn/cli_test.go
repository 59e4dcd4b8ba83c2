package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// commands are cairn's subcommands.
var commands = []string{"serve", "import", "query", "insights", "validate-logs", "hunt", "who"}

// TestBadFlagsExitTwo: a flag a command does not have, or a malformed
// value, exits 2 (validate-logs too: the AWS CLI v1's status for a bad
// command line), with the command's usage and nothing done.
func TestBadFlagsExitTwo(t *testing.T) {
	for _, cmd := range commands {
		for _, bad := range [][]string{{"--no-such-flag"}, {"-x"}, {"--data-dir"}} {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{cmd}, bad...), &stdout, &stderr)
			if want := 2; code != want || !strings.Contains(stderr.String(), "Usage") {
				t.Errorf("cairn %s %v: exit %d, want %d\n%s", cmd, bad, code, want, stderr.String())
			}
		}
	}
	for _, args := range [][]string{{"serve", "--log-level", "loud"}, {"import", "--max-errors", "0", "x"}, {"insights", "--start", "soon"},
		{"query", "--timeout", "forever", "SELECT 1"}, {"version", "extra"}, {"no-such-command"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("cairn %v: exit %d, want 2\n%s", args, code, stderr.String())
		}
	}
}

// TestEveryCommandHelpSaysWhatItDoes: `cairn COMMAND --help` exits 0 and
// says what the command does before its flags.
func TestEveryCommandHelpSaysWhatItDoes(t *testing.T) {
	for _, cmd := range commands {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{cmd, "--help"}, &stdout, &stderr)
		help := stdout.String() + stderr.String()
		head, _, _ := strings.Cut(help, "\n  -")
		if code != 0 || !strings.Contains(help, "Usage: cairn "+cmd) || len(strings.Fields(head)) < 20 {
			t.Errorf("cairn %s --help: exit %d; want a usage line and a description before the flags:\n%s", cmd, code, help)
		}
	}
}

// serveOnce starts and stops the server on dataDir, returning what it
// printed on stderr.
func serveOnce(t *testing.T, dataDir, cfgPath string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, then stop at once
	var stderr bytes.Buffer
	if err := serve(ctx, ln, serveFlags{dataDir: dataDir, config: cfgPath}, slog.New(slog.NewTextHandler(io.Discard, nil)), &stderr); err != nil {
		t.Fatalf("serve: %v", err)
	}
	return stderr.String()
}

// TestServeStartNotes: at start, serve says when --config leaves out the
// key it generated in the data dir earlier, and when it creates the data
// dir inside a git work tree.
func TestServeStartNotes(t *testing.T) {
	repo := t.TempDir()
	os.Mkdir(filepath.Join(repo, ".git"), 0o755)
	dataDir := filepath.Join(repo, "sub", "cairn-data")
	out := serveOnce(t, dataDir, "")
	if !strings.Contains(out, "inside the git work tree "+repo) || !strings.Contains(out, "cairn-data/ to .gitignore") {
		t.Errorf("first start in a git work tree:\n%s", out)
	}
	if !strings.Contains(out, "created account") {
		t.Fatalf("first start without --config created no key:\n%s", out)
	}
	// Again: the data dir exists, nothing more to say about git.
	if out := serveOnce(t, dataDir, ""); strings.Contains(out, "git work tree") || strings.Contains(out, "does not hold the key") {
		t.Errorf("second start:\n%s", out)
	}
	cfgPath := filepath.Join(t.TempDir(), "cairn.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(twoAccounts, 0))
	if out := serveOnce(t, dataDir, cfgPath); !strings.Contains(out, "does not hold the key cairn generated in this data dir") {
		t.Errorf("--config without the generated key: no note\n%s", out)
	}
	// A config that keeps the generated key: no note.
	gen, err := os.ReadFile(filepath.Join(dataDir, "credentials.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(t.TempDir(), "keep.yaml")
	writeFile(t, keep, string(gen))
	if out := serveOnce(t, dataDir, keep); strings.Contains(out, "does not hold the key") {
		t.Errorf("--config with the generated key:\n%s", out)
	}
	// Outside a git work tree: no note.
	if out := serveOnce(t, filepath.Join(t.TempDir(), "cairn-data"), cfgPath); strings.Contains(out, "git work tree") {
		t.Errorf("outside a git work tree:\n%s", out)
	}
}
