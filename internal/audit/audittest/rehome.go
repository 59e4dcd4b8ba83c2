package audittest

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// accountField matches the record fields naming an account
// (recipientAccountId, userIdentity's and resources' accountId).
var accountField = regexp.MustCompile(`"(recipientAccountId|accountId)"(\s*:\s*)"\d{12}"`)

// Rehome copies the log files (.json, .json.gz) under src into a new
// temporary folder, with every record's account fields set to account, and
// returns the folder: real logs, owned by the account a test imports as
// (cairn imports only the caller's own records).
func Rehome(t testing.TB, src, account string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".json.gz") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		gz := len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b
		if gz {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return err
			}
			if b, err = io.ReadAll(zr); err != nil {
				return err
			}
		}
		b = accountField.ReplaceAll(b, []byte(`"$1"$2"`+account+`"`))
		if gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(b)
			zw.Close()
			b = buf.Bytes()
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
