package importer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// collect parses data through r and returns the records and the record
// errors it yields, and the file error.
func collectAll(r io.Reader) (recs [][]byte, recErrs []int, err error) {
	err = parse(r, func(num int, raw []byte, err error) bool {
		if err != nil {
			recErrs = append(recErrs, num)
			return true
		}
		if num != len(recs)+len(recErrs)+1 {
			panic("records out of order")
		}
		recs = append(recs, bytes.Clone(raw))
		return true
	})
	return recs, recErrs, err
}

// oracle reads data with encoding/json's Decoder the way the brief
// describes it: stepping into every Records array of a sequence of objects
// and decoding each element into a RawMessage. ok is false when
// encoding/json rejects data.
func oracle(data []byte) (recs [][]byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		t, err := dec.Token()
		if err == io.EOF {
			return recs, len(recs) > 0 || bytes.Contains(data, []byte(`"Records"`))
		}
		if err != nil || t != json.Delim('{') {
			return nil, false
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, false
			}
			if k != "Records" {
				var skip json.RawMessage
				if dec.Decode(&skip) != nil {
					return nil, false
				}
				continue
			}
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return nil, false
			}
			for dec.More() {
				var raw json.RawMessage
				if dec.Decode(&raw) != nil {
					return nil, false
				}
				recs = append(recs, raw)
			}
			if _, err := dec.Token(); err != nil {
				return nil, false
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, false
		}
	}
}

// realFiles returns the decompressed contents of some real data files.
func realFiles(t testing.TB, n int) [][]byte {
	t.Helper()
	root := filepath.Join("..", "..", "..", "shared", "testdata", "real")
	var out [][]byte
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || len(out) >= n || !strings.Contains(p, ".json") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return err
			}
			if b, err = io.ReadAll(zr); err != nil {
				return err
			}
		}
		if len(b) < 64<<10 || len(out) < n/2 {
			out = append(out, b)
		}
		return nil
	})
	if len(out) == 0 {
		t.Skipf("no real data under %s", root)
	}
	return out
}

// readers wraps data in readers that return it in different chunks, to
// cross every buffer boundary.
func readers(data []byte) map[string]io.Reader {
	return map[string]io.Reader{
		"whole":    bytes.NewReader(data),
		"one-byte": iotest.OneByteReader(bytes.NewReader(data)),
		"half":     iotest.HalfReader(bytes.NewReader(data)),
		"data-err": iotest.DataErrReader(bytes.NewReader(data)),
	}
}

func TestParseMatchesEncodingJSON(t *testing.T) {
	for i, data := range realFiles(t, 40) {
		want, ok := oracle(data)
		if !ok {
			t.Fatalf("file %d: encoding/json rejects a real file", i)
		}
		for name, r := range readers(data) {
			if name == "one-byte" && len(data) > 64<<10 {
				continue // slow, and the small files cross the same boundaries
			}
			got, recErrs, err := collectAll(r)
			if err != nil || recErrs != nil {
				t.Errorf("file %d, %s: errors %v %v", i, name, err, recErrs)
			}
			if !sameRaws(got, want) {
				t.Errorf("file %d, %s: %d records differ from encoding/json's %d", i, name, len(got), len(want))
			}
		}
	}
}

func TestValueScan(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{`  {"a":"b\"}"} rest`, `{"a":"b\"}"}`, nil},
		{`[1,[2,{"]":"["}]] x`, `[1,[2,{"]":"["}]]`, nil},
		{`"a\\" x`, `"a\\"`, nil},
		{`"a\\\"" x`, `"a\\\""`, nil},
		{`12.5e3,`, `12.5e3`, nil},
		{`true`, `true`, nil},
		{`-0]`, `-0`, nil},
		{`{"a":1`, ``, io.ErrUnexpectedEOF},
		{`"abc`, ``, io.ErrUnexpectedEOF},
		{`   `, ``, io.ErrUnexpectedEOF},
		{`{"a":"` + strings.Repeat("x", 100) + `"}`, ``, errTooBig},
	}
	for _, tt := range tests {
		for name, r := range readers([]byte(tt.in)) {
			got, err := newReader(r, maxBuffer).value(64)
			if string(got) != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("value(%q) with %s = %q, %v; want %q, %v", tt.in, name, got, err, tt.want, tt.err)
			}
		}
	}
}

func TestLine(t *testing.T) {
	in := "\n a \r\n\n" + strings.Repeat("x", 100) + "\nb\nlast"
	want := []string{"a", "too big", "b", "last", "EOF"}
	for name, r := range readers([]byte(in)) {
		rd := newReader(r, maxBuffer)
		var got []string
		for range 10 {
			l, err := rd.line(64)
			switch {
			case err == io.EOF:
				got = append(got, "EOF")
			case err == errTooBig:
				got = append(got, "too big")
			case err != nil:
				got = append(got, err.Error())
			default:
				got = append(got, string(l))
			}
			if err == io.EOF {
				break
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: lines (-want +got):\n%s", name, diff)
		}
	}
}

// FuzzParse checks that the parser never panics, yields in order, and
// yields exactly what encoding/json reads whenever encoding/json accepts the
// input as {"Records":[...]} objects, whatever the chunking of the reads.
func FuzzParse(f *testing.F) {
	for _, b := range realFiles(f, 40) {
		if len(b) < 4<<10 {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{"Records":[{"eventID":"a"},{"eventID":"b"}]}`,
		`{"Records":[]} {"Records":[{"x":"}"}]}`,
		`{"NextToken":"x","Events":[{"CloudTrailEvent":"{\"eventID\":\"1\"}"}]}`,
		`[{"a":1},{"b":[2]}]`,
		"{\"eventID\":\"1\"}\n{\"eventID\":\"2\"}\n",
		"{\n \"eventID\": \"1\"\n}\n{\n}",
		`{"Records":[{"a":"\\\""}, 1, "s", null, [[]]]}`,
		`{"Records":{"a":1}}`,
		`{"Records":[{"a":1} {"b":2}]}`,
		`{"awsAccountId":"1","digestEndTime":"x","digestS3Object":"y"}`,
		"",
		"\x1f\x8b",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := collectAll(bytes.NewReader(data))
		got1, _, err1 := collectAll(iotest.OneByteReader(bytes.NewReader(data)))
		if !sameRaws(got, got1) || (err == nil) != (err1 == nil) {
			t.Fatalf("one-byte reads differ: %d records (%v) vs %d (%v)", len(got), err, len(got1), err1)
		}
		if want, ok := oracle(data); ok && firstKey(data) == "Records" {
			if err != nil {
				t.Fatalf("encoding/json accepts the input; parse: %v", err)
			}
			if !sameRaws(got, want) {
				t.Fatalf("records %q; encoding/json reads %q", got, want)
			}
		}
	})
}

// sameRaws compares records byte for byte (cmp is slow on large []byte).
func sameRaws(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
