package lake

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// backlogAt is a DuckDB engine whose journal is full when the test says.
type backlogAt struct {
	engine.Engine
	full atomic.Bool
}

func (e *backlogAt) Backlogged() bool { return e.full.Load() }

// TestPutAuditEventsThrottledWhenBacklogged: while the engine's journal is
// full, PutAuditEvents answers ThrottlingException (HTTP 400, which the
// SDKs retry) and stores nothing; channel errors still come first, and
// once the journal has room the same call succeeds.
func TestPutAuditEventsThrottledWhenBacklogged(t *testing.T) {
	dir := t.TempDir()
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	be := &backlogAt{Engine: eng}
	l, err := Open(dir, Options{Engine: be})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(NewTestAPI(l, audittest.NewMemStore(), keys))
	t.Cleanup(srv.Close)
	e := &env{lake: l, url: srv.URL}
	const key = "AKIAAAAAAAAAAAAAAAAA"
	a := e.client(key)
	id, arn := customChannel(t, a, "chan")
	body := map[string]any{"auditEvents": []map[string]any{{"id": "e1", "eventData": eventData("Open", "111111111111")}}}

	be.full.Store(true)
	if status, out := e.put(t, key, "cloudtrail-data", arn, body); status != 400 || out["__type"] != "ThrottlingException" {
		t.Errorf("backlogged: %d %v; want 400 ThrottlingException", status, out)
	}
	if status, out := e.put(t, key, "cloudtrail-data", strings.Replace(arn, "channel/", "channel/0", 1), body); status != 404 || out["__type"] != "ChannelNotFound" {
		t.Errorf("backlogged, unknown channel: %d %v; want 404 ChannelNotFound", status, out)
	}
	id = id[strings.LastIndex(id, "/")+1:]
	if rows := runQuery(t, a, `SELECT eventData.eventName AS name FROM `+id); len(rows) != 0 {
		t.Errorf("a throttled call stored %v", rows)
	}

	be.full.Store(false)
	status, out := e.put(t, key, "cloudtrail-data", arn, body)
	if status != 200 || len(out["successful"].([]any)) != 1 {
		t.Fatalf("with room: %d %v", status, out)
	}
	if rows := runQuery(t, a, `SELECT eventData.eventName AS name FROM `+id); len(rows) != 1 || rows[0]["name"] != "Open" {
		t.Errorf("after the throttled call and one with room: %v", rows)
	}
}
