package detect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// TestExpireKeepsUndelivered: findings older than the retention go, oldest
// first, except those the webhook has not taken yet; the file, the memory
// and the webhook position agree after a restart.
func TestExpireKeepsUndelivered(t *testing.T) {
	for _, webhook := range []bool{true, false} {
		name := "without webhook"
		if webhook {
			name = "with webhook"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rules := t.TempDir()
			writeRule(t, filepath.Join(rules, "stop.yml"), stopLoggingRule)
			st := audittest.NewMemStore()
			for i := range 5 {
				appendAll(t, st, event(t, i, "111111111111", "us-east-1", "StopLogging", "IAMUser"))
			}
			now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			cfg := Config{Dir: t.TempDir(), Feed: st, Folders: []string{rules}, Retention: 24 * time.Hour,
				Now: func() time.Time { return now }}
			if webhook {
				cfg.Webhook.URL = "http://127.0.0.1:9/never"
			}
			d := open(t, cfg)
			if _, err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			d.mu.Lock()
			d.st.Delivered = 3 // the webhook took three
			d.mu.Unlock()
			if n, err := d.Expire(); err != nil || n != 0 {
				t.Fatalf("Expire before the retention = %d, %v", n, err)
			}
			now = now.Add(25 * time.Hour)
			appendAll(t, st, event(t, 5, "111111111111", "us-east-1", "StopLogging", "IAMUser"))
			if _, err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			wantGone, wantLeft, wantDelivered := 3, "3 4 5", 0
			if !webhook {
				wantGone, wantLeft, wantDelivered = 5, "5", 0
			}
			if n, err := d.Expire(); err != nil || n != wantGone {
				t.Fatalf("Expire = %d, %v; want %d", n, err, wantGone)
			}
			// New findings still go to the rewritten file.
			appendAll(t, st, event(t, 6, "111111111111", "us-east-1", "DeleteTrail", "IAMUser"))
			if _, err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			d.Close()
			d = open(t, cfg)
			var left []string
			for _, f := range d.findings {
				left = append(left, strings.TrimPrefix(f.EventID, "ev-111111111111-"))
			}
			if got := strings.Join(left, " "); got != wantLeft+" 6" || d.st.Delivered != wantDelivered {
				t.Errorf("after a restart: findings %q, delivered %d; want %q, %d", got, d.st.Delivered, wantLeft+" 6", wantDelivered)
			}
			b, _ := os.ReadFile(filepath.Join(cfg.Dir, FindingsFile))
			if n := strings.Count(string(b), "\n"); n != len(left) {
				t.Errorf("findings file has %d lines; want %d", n, len(left))
			}
		})
	}
}
