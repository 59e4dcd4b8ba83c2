package statefile_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-audit/cairn/internal/statefile"
	"github.com/cairn-audit/cairn/internal/statetest"
)

func TestConformance(t *testing.T) {
	statetest.Run(t, statefile.Open(t.TempDir()))
}

// A key is the file of the same name: token.key written before this
// adapter existed is read as it was.
func TestKeyIsTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token.key"), []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := statefile.Open(dir)
	b, v, err := st.Get(context.Background(), "token.key")
	if err != nil || v == 0 || string(b) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("Get(token.key) = %q, %d, %v; want the file's bytes", b, v, err)
	}
	if _, err := st.Put(context.Background(), "sub/k", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "sub", "k"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sub/k: %v, %v; want a 0600 file", fi, err)
	}
}
