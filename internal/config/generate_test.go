package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestGenerateCreatesThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // Generate makes the data dir too
	c1, g1, err := Generate(dir)
	if err != nil {
		t.Fatalf("first Generate: %v", err)
	}
	id, secret, ok := c1.FirstKey()
	want := Generated{Created: true, Path: filepath.Join(dir, GeneratedFile), AccountID: c1.Accounts[0].ID,
		UserName: GeneratedUser, AccessKeyID: id}
	if g1 != want || !ok {
		t.Errorf("first Generate = %+v; want %+v", g1, want)
	}
	for _, f := range []struct {
		name, value string
		re          *regexp.Regexp
	}{
		{"account ID", g1.AccountID, regexp.MustCompile(`^[1-9][0-9]{11}$`)},
		{"access key ID", id, regexp.MustCompile(`^AKIA[A-Z0-9]{16}$`)},
		{"secret", secret, regexp.MustCompile(`^[A-Za-z0-9+/]{40}$`)},
	} {
		if !f.re.MatchString(f.value) {
			t.Errorf("generated %s %q does not match %s", f.name, f.value, f.re)
		}
	}
	p, ok := c1.Principal(id)
	if !ok || p.ARN != "arn:aws:iam::"+g1.AccountID+":user/admin" || p.Secret != secret || !p.Responder {
		t.Errorf("Principal(%q) = %+v, %v", id, p, ok)
	}

	st, err := os.Stat(g1.Path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v; want 0600", g1.Path, st.Mode().Perm())
	}
	// The file is a config file a user can copy.
	if _, err := Load(g1.Path); err != nil {
		t.Errorf("Load(generated file): %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries; want only %s (no temporary files left)", len(entries), GeneratedFile)
	}

	c2, g2, err := Generate(dir)
	if err != nil {
		t.Fatalf("second Generate: %v", err)
	}
	if want.Created = false; g2 != want {
		t.Errorf("second Generate = %+v; want %+v", g2, want)
	}
	if id2, secret2, _ := c2.FirstKey(); id2 != id || secret2 != secret {
		t.Errorf("second Generate made a new key %q", id2)
	}
}

func TestGenerateIsRandom(t *testing.T) {
	_, a, errA := Generate(t.TempDir())
	_, b, errB := Generate(t.TempDir())
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if a.AccountID == b.AccountID || a.AccessKeyID == b.AccessKeyID {
		t.Errorf("two data dirs got the same account or key: %+v, %+v", a, b)
	}
}

// TestGenerateConcurrent: cairns starting together on one data dir agree
// on one key, and exactly one of them created it.
func TestGenerateConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	gens := make([]Generated, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, gens[i], errs[i] = Generate(dir) })
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Generate #%d: %v", i, errs[i])
		}
		if gens[i].AccessKeyID != gens[0].AccessKeyID {
			t.Errorf("Generate #%d key %s; #0 key %s", i, gens[i].AccessKeyID, gens[0].AccessKeyID)
		}
		if gens[i].Created {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d calls say they created the key; want 1", created)
	}
}

func TestGenerateKeepsEdits(t *testing.T) {
	dir := t.TempDir()
	_, g, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(g.Path)
	if err != nil {
		t.Fatal(err)
	}
	edited := "event_history:\n  retention_days: 7\n" + string(b)
	if err := os.WriteFile(g.Path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	c, g2, err := Generate(dir)
	if err != nil || g2.Created || g2.AccessKeyID != g.AccessKeyID || c.EventHistory.RetentionDays != 7 {
		t.Errorf("Generate after an edit = %+v, %+v, %v; want the edited file", c, g2, err)
	}
}

func TestGenerateRefusesADamagedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, GeneratedFile)
	if err := os.WriteFile(path, []byte("accounts: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Generate(dir)
	if err == nil || !strings.Contains(err.Error(), path+":1:") {
		t.Errorf("Generate(damaged) = %v; want an error naming %s:1", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != "accounts: [\n" {
		t.Errorf("Generate changed the damaged file to %q", b)
	}
}

func TestRandom(t *testing.T) {
	for _, alphabet := range []string{"0", digits, upperAlnum, secretChars} {
		s := random(alphabet, 4000)
		if len(s) != 4000 {
			t.Errorf("random(%q, 4000) has %d characters", alphabet, len(s))
		}
		seen := map[rune]bool{}
		for _, r := range s {
			if !strings.ContainsRune(alphabet, r) {
				t.Fatalf("random(%q) gave %q", alphabet, r)
			}
			seen[r] = true
		}
		// 4000 draws miss one of at most 64 characters with probability < 64*(63/64)^4000 ≈ 1e-26.
		if len(seen) != len(alphabet) {
			t.Errorf("random(%q, 4000) used %d of %d characters", alphabet, len(seen), len(alphabet))
		}
	}
}
