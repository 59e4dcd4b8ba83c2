package audit_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	. "github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// leading calls ExtractLeading on a copy of b with a keep that copies,
// then overwrites that copy, so that a Record still holding any of the
// buffer's bytes (a string not moved to the kept copy) shows.
func leading(t *testing.T, b []byte) (r Record, n int, ok bool) {
	t.Helper()
	buf := bytes.Clone(b)
	kept := 0
	r, n, ok = ExtractLeading(buf, func(raw []byte) []byte {
		kept++
		if !bytes.Equal(raw, b[:len(raw)]) {
			t.Fatalf("keep was given %.100q; want the first %d bytes of the input", raw, len(raw))
		}
		return bytes.Clone(raw)
	})
	for i := range buf {
		buf[i] = 'X'
	}
	if want := map[bool]int{true: 1, false: 0}[ok]; kept != want {
		t.Fatalf("ExtractLeading(%.100q) ok=%v called keep %d times; want %d", b, ok, kept, want)
	}
	return r, n, ok
}

// checkLeading fails when ExtractLeading on raw followed by suffix does
// not return what Extract returns for raw, or takes a record Extract would
// not; it reports whether it took raw.
func checkLeading(t *testing.T, name string, raw []byte, suffix string) bool {
	t.Helper()
	got, n, ok := leading(t, append(bytes.Clone(raw), suffix...))
	if !ok {
		return false
	}
	// A record followed by more than whitespace (variant 33) is the
	// parser's to refuse: ExtractLeading takes the object it starts with.
	_, wholeErr := Extract(raw)
	want, err := Extract(raw[:min(n, len(raw))])
	if n > len(raw) || err != nil || wholeErr == nil && n != len(bytes.TrimRight(raw, " \t\r\n")) {
		t.Fatalf("%s: ExtractLeading took %d bytes of a record of %d (Extract of them: %v)\nrecord: %.300q", name, n, len(raw), err, raw)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: ExtractLeading =\n%+v\nExtract =\n%+v\nrecord: %.300q", name, got, want, raw)
	}
	return true
}

// TestExtractLeading: on every real record, followed by what follows a
// record in a Records array or by nothing, ExtractLeading returns what
// Extract returns, in one pass; cut short, it takes nothing.
func TestExtractLeading(t *testing.T) {
	recs := audittest.RealRecords(t)
	took := 0
	for i, rr := range recs {
		name := fmt.Sprintf("%s#%d", rr.File, rr.Index)
		raw := bytes.TrimSpace(rr.Raw)
		for _, suffix := range []string{"", ",", "\n]}", `,{"eventID":"x"}`} {
			if checkLeading(t, name, raw, suffix) && suffix == "" {
				took++
			}
		}
		if _, _, ok := leading(t, raw[:len(raw)-1]); ok {
			t.Fatalf("%s: ExtractLeading took a record without its last byte", name)
		}
		if i%97 == 0 {
			// Cut anywhere: never taken.
			for cut := 1; cut < len(raw); cut += 13 {
				if _, _, ok := leading(t, raw[:cut]); ok {
					t.Fatalf("%s: ExtractLeading took a record cut to %d of its %d bytes", name, cut, len(raw))
				}
			}
		}
	}
	if took < len(recs)*95/100 {
		t.Errorf("ExtractLeading took %d of %d real records; want at least 95%%", took, len(recs))
	}
	for i, v := range scanVariants {
		for _, suffix := range []string{"", ",", "]"} {
			checkLeading(t, fmt.Sprintf("variant %d", i), []byte(v), suffix)
		}
	}
}

// FuzzExtractLeading: on any input, what ExtractLeading takes Extract
// accepts and reads the same, and a record the scanner reads it takes
// whole.
func FuzzExtractLeading(f *testing.F) {
	for _, v := range scanVariants {
		f.Add([]byte(v))
		f.Add([]byte(v + `,{"eventID":"x"}`))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, n, ok := leading(t, b)
		if ok {
			want, err := Extract(b[:n])
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("ExtractLeading took %d bytes: %+v; Extract of them = %+v, %v", n, got, want, err)
			}
			return
		}
		trimmed := bytes.TrimRight(b, " \t\r\n")
		if len(b) > 0 && b[0] == '{' && len(b) <= MaxRecordSize && Scans(b) {
			if _, err := Extract(b); err == nil {
				t.Fatalf("ExtractLeading left a record of %d bytes that the scanner reads and Extract accepts", len(trimmed))
			}
		}
	})
}
