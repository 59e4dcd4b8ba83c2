package audit

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, c := range []struct {
		s              string
		n              int
		clip, truncate string
	}{
		{"", 3, "", ""},
		{"abc", 3, "abc", "abc"},
		{"abcd", 3, "abc...", "abc"},
		{"abcd", 0, "...", ""},
		{"abcd", -1, "...", ""},
		{"é", 1, "...", ""},                     // 2 bytes: never half
		{"aé", 2, "a...", "a"},                  // cut inside é
		{"aéb", 3, "aé...", "aé"},               // cut after é
		{"€uro", 2, "...", ""},                  // 3 bytes
		{"x€uro", 3, "x...", "x"},               // cut 2 bytes into €
		{"😀😀", 5, "😀...", "😀"},                  // 4 bytes, cut 1 byte in
		{"😀😀", 7, "😀...", "😀"},                  // cut 3 bytes in
		{"😀😀", 8, "😀😀", "😀😀"},                   // fits
		{"ab\xffcd", 4, "abc...", "abc"},        // invalid byte dropped
		{"ab\xffcd", 5, "ab\xffcd", "ab\xffcd"}, // fits: returned as is
	} {
		if got := Clip(c.s, c.n); got != c.clip {
			t.Errorf("Clip(%q, %d) = %q; want %q", c.s, c.n, got, c.clip)
		}
		if got := Truncate(c.s, c.n); got != c.truncate {
			t.Errorf("Truncate(%q, %d) = %q; want %q", c.s, c.n, got, c.truncate)
		}
	}
}

func FuzzClip(f *testing.F) {
	for _, s := range []string{"", "abc", "aé", "x€uro", "😀😀😀", "ab\xffcd", strings.Repeat("ü", 100)} {
		for _, n := range []int{0, 1, 2, 3, 5, 64} {
			f.Add(s, n)
		}
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		c, tr := Clip(s, n), Truncate(s, n)
		if len(s) <= n {
			if c != s || tr != s {
				t.Fatalf("Clip/Truncate(%q, %d) = %q, %q; want s unchanged", s, n, c, tr)
			}
			return
		}
		if !utf8.ValidString(c) || !utf8.ValidString(tr) {
			t.Fatalf("Clip/Truncate(%q, %d) = %q, %q: not valid UTF-8", s, n, c, tr)
		}
		if len(tr) > max(n, 0) || len(c) > max(n, 0)+len(Ellipsis) || c != tr+Ellipsis {
			t.Fatalf("Clip/Truncate(%q, %d) = %q, %q: too long or not the truncation plus %q", s, n, c, tr, Ellipsis)
		}
		if utf8.ValidString(s) && (!strings.HasPrefix(s, tr) || len(tr) < n-(utf8.UTFMax-1)) {
			t.Fatalf("Truncate(%q, %d) = %q: not the longest prefix of whole characters", s, n, tr)
		}
	})
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("NewID() = %q; want a lower-case UUID v4", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}
