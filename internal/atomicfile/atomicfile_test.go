package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// names lists a folder.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, content := range []string{"first", "", "second, longer than the first"} {
		if err := Write(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Errorf("after Write(%q): %q, %v", content, got, err)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v; want 0600", fi.Mode().Perm())
		}
		if got := names(t, dir); !slices.Equal(got, []string{"f.json"}) {
			t.Errorf("folder holds %q; want only f.json", got)
		}
	}
}

func TestWriteFuncFailureKeepsTheOldContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFunc(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("half of the new"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("WriteFunc = %v; want %v", err, boom)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("content %q; want old", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"f"}) {
		t.Errorf("folder holds %q; want only f", got)
	}
}

func TestWriteIntoAMissingFolderFails(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "f"), nil, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write = %v; want fs.ErrNotExist", err)
	}
}

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "creds")
	if err := Create(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Create(p, []byte("two"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create = %v; want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "one" {
		t.Errorf("content %q; want one (never replaced)", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"creds"}) {
		t.Errorf("folder holds %q; want only creds", got)
	}
}

func TestCleanTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "trails.json")
	files := map[string]bool{ // name: removed by CleanTemp(p)
		"trails.json":               false,
		"trails.json.tmp-1":         true,
		"trails.json.tmp-429496729": true,
		"trails.json.tmp-":          false,
		"trails.json.tmp-12x":       false,
		"trails.json.tmp-1.tmp-2":   false, // a temporary file of trails.json.tmp-1
		"other.json.tmp-7":          false,
		"xtrails.json.tmp-7":        false,
	}
	for n := range files {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	if err := CleanTemp(p); err != nil {
		t.Fatal(err)
	}
	left := names(t, dir)
	for n, removed := range files {
		if slices.Contains(left, n) == removed {
			t.Errorf("%s: removed %v; want %v", n, !removed, removed)
		}
	}
}

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		"a.tmp-1":            true,
		"dir/a.json.tmp-123": true,
		"a.tmp-":             false,
		"a.tmp-1x":           false,
		"a.tmp":              false,
		"a":                  false,
		"a.tmp-1.json":       false,
	} {
		if got := IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v; want %v", name, got, want)
		}
	}
}

func TestTempNamesAreTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	var seen string
	WriteFunc(p, 0o600, func(io.Writer) error {
		for _, n := range names(t, dir) {
			seen = n
		}
		return errors.New("stop")
	})
	if !IsTemp(seen) {
		t.Errorf("temporary file %q: IsTemp = false", seen)
	}
}
