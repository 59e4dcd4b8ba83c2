package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestSessionsExpireAndAreBounded(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, err := newSessionCache(3, "", nil, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c.put(fmt.Sprintf("ASIA%d", i), &session{account: "111111111111", expires: clk.now().Add(time.Duration(i+1) * time.Hour)})
	}
	if _, ok := c.get("ASIA0"); !ok { // ASIA0 now the most recently used
		t.Fatal("ASIA0 not remembered")
	}
	c.put("ASIA3", &session{expires: clk.now().Add(time.Hour)})
	if _, ok := c.get("ASIA1"); ok || c.len() != 3 {
		t.Errorf("after a 4th session in a cache of 3: ASIA1 (least recently used) kept %v, len %d", ok, c.len())
	}
	clk.add(61 * time.Minute)
	if _, ok := c.get("ASIA0"); ok {
		t.Error("ASIA0 used after its Expiration")
	}
	if _, ok := c.get("ASIA2"); !ok {
		t.Error("ASIA2 (3 h) forgotten before its Expiration")
	}
}

func TestSessionsPersist(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "sessions.jsonl")
	log := slog.New(slog.DiscardHandler)
	c, err := newSessionCache(100, path, nil, clk.now, log)
	if err != nil {
		t.Fatal(err)
	}
	c.put("ASIALIVE", &session{account: "111111111111", roleARN: "arn:aws:iam::111111111111:role/r", arn: "arn:aws:sts::111111111111:assumed-role/r/s",
		assumedID: "AROA1:s", created: "2026-01-01T00:00:00Z", expires: clk.now().Add(2 * time.Hour)})
	c.put("ASIASHORT", &session{account: "111111111111", expires: clk.now().Add(time.Minute)})
	c.close()
	// A crash mid-write leaves a damaged last line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"accessKeyId":"ASIAHALF","exp`)
	f.Close()
	// A crash mid-compaction leaves its temporary file.
	os.WriteFile(path+".tmp-12345", []byte(`{"accessKeyId":"ASIATEMP"}`), 0o600)

	clk.add(10 * time.Minute)
	c, err = newSessionCache(100, path, nil, clk.now, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	s, ok := c.get("ASIALIVE")
	if !ok || s.roleARN != "arn:aws:iam::111111111111:role/r" || s.assumedID != "AROA1:s" || !s.expires.Equal(clk.now().Add(110*time.Minute)) {
		t.Errorf("ASIALIVE after a restart: %+v, %v", s, ok)
	}
	if _, ok := c.get("ASIASHORT"); ok {
		t.Error("an expired session came back from the file")
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "ASIASHORT") || strings.Contains(string(b), "ASIAHALF") || strings.Count(string(b), "\n") != 1 {
		t.Errorf("file not compacted at start:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("sessions file mode %v; want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(path + ".tmp-12345"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the interrupted compaction's temporary file is still there (%v)", err)
	}
}

// TestSessionsFileFormat reads lines as gateway-sessions.jsonl holds them
// (an assumed role, and a GetSessionToken session with its issuer) and
// checks they come back as the same sessions and are written back byte for
// byte: files written by earlier versions keep loading.
func TestSessionsFileFormat(t *testing.T) {
	lines := `{"accessKeyId":"ASIAROLE","expires":"2026-01-01T02:00:00Z","created":"2026-01-01T00:00:00Z","account":"111111111111","roleArn":"arn:aws:iam::111111111111:role/r","assumedId":"AROA1:s","arn":"arn:aws:sts::111111111111:assumed-role/r/s"}
{"accessKeyId":"ASIAUSER","expires":"2026-01-01T03:00:00Z","created":"2026-01-01T00:00:01Z","account":"111111111111","issuer":{"principalId":"AIDAALICE","arn":"arn:aws:iam::111111111111:user/alice","accountId":"111111111111","userName":"alice"}}
`
	path := filepath.Join(t.TempDir(), "gateway-sessions.jsonl")
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, err := newSessionCache(100, path, nil, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if s, ok := c.get("ASIAROLE"); !ok || s.roleARN != "arn:aws:iam::111111111111:role/r" || s.issuer.ARN != "" {
		t.Errorf("ASIAROLE = %+v, %v", s, ok)
	}
	s, ok := c.get("ASIAUSER")
	if !ok || s.roleARN != "" || s.issuer.PrincipalID != "AIDAALICE" || s.issuer.ARN != "arn:aws:iam::111111111111:user/alice" ||
		s.issuer.AccountID != "111111111111" || s.issuer.UserName != "alice" {
		t.Errorf("ASIAUSER = %+v, %v", s, ok)
	}
	if b, _ := os.ReadFile(path); string(b) != lines {
		t.Errorf("compacted file:\n%s\nwant the lines read:\n%s", b, lines)
	}
}
