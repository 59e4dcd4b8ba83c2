package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the .err golden files")

func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) < 10 {
		t.Fatalf("found %d bad configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) = nil; want an error", f)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644)
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("no golden file (run with -update): %v", rerr)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Errorf("Load(%s) =\n%s\nwant\n%s", f, got, want)
			}
		})
	}
}

func TestGoodConfig(t *testing.T) {
	c, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention() != 0 {
		t.Errorf("Retention = %v; want 0 (forever)", c.Retention())
	}
	p, ok := c.Principal("AKIAALICE00000000001")
	if !ok || p.AccountID != "111111111111" || p.UserName != "alice" || p.ARN != "arn:aws:iam::111111111111:user/alice" ||
		p.Secret != "alice-secret-key" || len(p.PrincipalID) != 21 || !strings.HasPrefix(p.PrincipalID, "AIDA") {
		t.Errorf("Principal = %+v, %v", p, ok)
	}
	if _, ok := c.Principal("AKIANOBODY0000000000"); ok {
		t.Error("unknown key found")
	}
	def, _ := Parse("x", []byte("accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - id: AKIAAAAAAAAAAAAAAAAA\n            secret: s\n"))
	if def.Retention() != 90*24*time.Hour {
		t.Errorf("default Retention = %v; want 90 days", def.Retention())
	}
}

func TestGenerateCreatesOnceThenReuses(t *testing.T) {
	dir := t.TempDir()
	c1, g1, err := Generate(dir)
	if err != nil || !g1.Created {
		t.Fatalf("Generate = %+v, %v; want created", g1, err)
	}
	st, _ := os.Stat(g1.Path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600", st.Mode().Perm())
	}
	id, secret, _ := c1.FirstKey()
	if !strings.HasPrefix(id, "AKIA") || len(id) != 20 || len(secret) != 40 || len(g1.AccountID) != 12 {
		t.Errorf("generated key %q / secret of %d chars / account %q", id, len(secret), g1.AccountID)
	}
	c2, g2, err := Generate(dir)
	if err != nil || g2.Created {
		t.Fatalf("second Generate = %+v, %v; want reuse", g2, err)
	}
	id2, secret2, _ := c2.FirstKey()
	if id2 != id || secret2 != secret || g2.AccountID != g1.AccountID {
		t.Error("second Generate made a new key")
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/good.yaml", "testdata/duplicate-key.bad.yaml"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.yaml", b)
		if err == nil {
			if _, _, ok := c.FirstKey(); !ok {
				t.Error("accepted a config without a key")
			}
		}
	})
}
