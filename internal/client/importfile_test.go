package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/importer"
)

// fileServer answers ImportRecords calls with a log file's bytes as
// answer says, and hands every other call to next (framed records).
type fileServer struct {
	next   http.Handler
	answer func() (int, string)
	mu     sync.Mutex
	files  []string // the X-Cairn-File-Key of each file call
}

func (f *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != FileContentType {
		f.next.ServeHTTP(w, r)
		return
	}
	io.Copy(io.Discard, r.Body)
	if !strings.Contains(r.Header.Get("Authorization"), "x-cairn-file-key") {
		w.WriteHeader(403)
		io.WriteString(w, `{"__type":"SignatureDoesNotMatchException","message":"the file key is not signed"}`)
		return
	}
	f.mu.Lock()
	f.files = append(f.files, r.Header.Get(fileKeyHeader))
	f.mu.Unlock()
	status, body := f.answer()
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// TestImportFileFallsBack: a server from before files
// (SerializationException) is sent one file, then framed records for it
// and every other file; a server that refuses one file's content
// (InvalidLogFileException, RequestEntityTooLargeException) gets that
// file's records framed and the next file whole; a server's report whose
// counts do not add up stops the import.
func TestImportFileFallsBack(t *testing.T) {
	dir := t.TempDir()
	recs := realRecords(t, 30)
	for i := range 3 {
		var raws []string
		for _, r := range recs[i*10 : i*10+10] {
			raws = append(raws, string(r.Raw))
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(`{"Records":[` + strings.Join(raws, ",") + `]}`))
		zw.Close()
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.json.gz", i)), buf.Bytes(), 0o600)
	}
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		wantFiles  int // file calls made
		wantFramed int // records sent framed
		wantErr    string
	}{
		{"old server", 400, `{"__type":"SerializationException","message":"The request body is not valid UTF-8 (at byte offset 1)."}`, 1, 30, ""},
		{"an older server", 400, `{"__type":"UnknownOperationException","message":"Unknown operation."}`, 1, 30, ""},
		{"a file refused", 400, `{"__type":"InvalidLogFileException","message":"The log file's gzip stream is truncated or corrupt."}`, 3, 30, ""},
		{"a bomb refused", 413, `{"__type":"RequestEntityTooLargeException","message":"The log file decompresses to more than 67108864 bytes."}`, 3, 30, ""},
		{"counts that do not add up", 200, `{"Files":1,"Records":10,"Imported":3}`, 1, 0, "malformed response"},
		{"an access denied", 400, `{"__type":"AccessDeniedException","message":"no"}`, 1, 0, "AccessDeniedException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{t: t, refuse: -1}
			fs := &fileServer{next: f, answer: func() (int, string) { return tc.status, tc.body }}
			srv := httptest.NewServer(fs)
			t.Cleanup(srv.Close)
			sink := NewImporter(ImporterConfig{Endpoint: srv.URL, Region: "eu-west-3", Credentials: testCreds, HTTPClient: srv.Client(), MaxAttempts: 1})
			sink.sleep = func(context.Context, time.Duration) error { return nil }
			rep, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: sink, Workers: 1})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Run: %v; want an error saying %s", err, tc.wantErr)
				}
			} else if err != nil || rep.Imported != 30 || rep.Files != 3 {
				t.Errorf("Run: %+v, %v; want 3 files, 30 imported", rep, err)
			}
			if len(fs.files) != tc.wantFiles || len(f.records()) != tc.wantFramed {
				t.Errorf("%d file calls (%q), %d records framed; want %d and %d", len(fs.files), fs.files, len(f.records()), tc.wantFiles, tc.wantFramed)
			}
			for _, k := range fs.files {
				if !strings.HasSuffix(k, ".json.gz") || !strings.HasPrefix(k, dir) {
					t.Errorf("file key %q; want the file's path", k)
				}
			}
		})
	}
}
