package lake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	dduckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// TestQueryErrorsSendOnlyTheStatements: DuckDB's objections to the
// caller's statement reach the caller (InvalidQueryStatement, its stores
// named by their IDs); every other failure (the database's, the file
// system's) is not an *audit.Error, so the client never sees its text.
func TestQueryErrorsSendOnlyTheStatements(t *testing.T) {
	id := "0b5b6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	for _, c := range []struct {
		name string
		err  error
		want string // the message sent; "" = not sent
	}{
		{"parser", &dduckdb.Error{Type: dduckdb.ErrorTypeParser, Msg: `Parser Error: syntax error at or near "FORM"`}, `Parser Error: syntax error at or near "FORM"`},
		{"binder, its store by ID", &dduckdb.Error{Type: dduckdb.ErrorTypeBinder, Msg: `Binder Error: Referenced column "x" not found in FROM clause!` + "\nCandidate bindings: \"" + tableName(id) + `.eventName"`},
			`Binder Error: Referenced column "x" not found in FROM clause!`},
		{"catalog", &dduckdb.Error{Type: dduckdb.ErrorTypeCatalog, Msg: `Catalog Error: Table with name ` + tableName(id) + ` does not exist!`}, `Catalog Error: Table with name ` + id + ` does not exist!`},
		{"conversion", &dduckdb.Error{Type: dduckdb.ErrorTypeConversion, Msg: `Conversion Error: Could not convert string 'abc' to INT32`}, `Conversion Error: Could not convert string 'abc' to INT32`},
		{"division", &dduckdb.Error{Type: dduckdb.ErrorTypeOutOfRange, Msg: `Out of Range Error: Overflow in multiplication of INT32`}, `Out of Range Error: Overflow in multiplication of INT32`},
		{"out of memory", &dduckdb.Error{Type: dduckdb.ErrorTypeOutOfMemory, Msg: `Out of Memory Error: could not allocate block of size 256.0 KiB (1.0 GiB/1.0 GiB used)`}, "The query needs more memory than cairn's Lake allows; narrow the query or add a LIMIT."},
		{"too large", fmt.Errorf("run: %w", engine.ErrTooLarge), "The query results exceed cairn's limit; narrow the query or add a LIMIT."},
		{"io", &dduckdb.Error{Type: dduckdb.ErrorTypeIO, Msg: `IO Error: Could not write file "/var/lib/cairn/lake.duckdb.tmp/duckdb_temp_storage-0.tmp": No space left on device`}, ""},
		{"internal", &dduckdb.Error{Type: dduckdb.ErrorTypeInternal, Msg: "INTERNAL Error: Attempted to access index 3 within vector of size 3\nStack Trace:\n..."}, ""},
		{"fatal", &dduckdb.Error{Type: dduckdb.ErrorTypeFatal, Msg: "FATAL Error: database has been invalidated"}, ""},
		{"connection", &dduckdb.Error{Type: dduckdb.ErrorTypeConnection, Msg: "Connection Error: Connection was closed"}, ""},
		{"transaction", &dduckdb.Error{Type: dduckdb.ErrorTypeTransaction, Msg: "TransactionContext Error: Conflict on update"}, ""},
		{"unknown type", &dduckdb.Error{Type: dduckdb.ErrorTypeInvalid, Msg: "something at /var/lib/cairn"}, ""},
		{"file system", &fs.PathError{Op: "open", Path: "/var/lib/cairn/lake-results/q.rows", Err: fs.ErrPermission}, ""},
		{"database/sql", errors.New("sql: database is closed"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := queryError(duckdb.Classify(c.err), []string{id})
			var ae *audit.Error
			sent := errors.As(got, &ae)
			switch {
			case c.want == "" && sent:
				t.Errorf("queryError(%v) = %v; want an internal error, not sent", c.err, ae)
			case c.want == "" && !errors.Is(got, c.err):
				t.Errorf("queryError(%v) = %v; want it wrapped (for the log)", c.err, got)
			case c.want != "" && (!sent || ae.Code != "InvalidQueryStatement" || ae.Message != c.want):
				t.Errorf("queryError(%v) = %v; want InvalidQueryStatement %q", c.err, got, c.want)
			}
		})
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestQueryFailureCauseIsLogged: a query that fails for cairn's reasons
// (here its result file cannot be written) answers FAILED with a message
// naming its query ID but not the cause; the log has the cause and the
// ID. A statement error keeps DuckDB's message.
func TestQueryFailureCauseIsLogged(t *testing.T) {
	var logs syncBuffer
	e := newEnvWith(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := e.client(keyA)
	ctx := context.Background()
	id := storeWithEvents(t, e, c, "111111111111", "alpha", 3)

	q := startQuery(t, c, `SELECT CAST(eventName AS INTEGER) AS n FROM `+id)
	if d := waitQuery(t, c, q); d.QueryStatus != types.QueryStatusFailed || !strings.Contains(aws.ToString(d.ErrorMessage), "Could not convert") {
		t.Errorf("a statement's conversion error: %s %q; want FAILED with DuckDB's message", d.QueryStatus, aws.ToString(d.ErrorMessage))
	}

	if err := os.RemoveAll(e.lake.resultsDir); err != nil {
		t.Fatal(err)
	}
	q = startQuery(t, c, `SELECT eventID FROM `+id)
	d := waitQuery(t, c, q)
	msg := aws.ToString(d.ErrorMessage)
	if d.QueryStatus != types.QueryStatusFailed || !strings.Contains(msg, q) || strings.Contains(msg, e.lake.resultsDir) || strings.Contains(msg, "no such file") {
		t.Errorf("a query whose result cannot be written: %s %q; want FAILED naming the query, not the cause", d.QueryStatus, msg)
	}
	r, err := c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: aws.String(q)})
	if err != nil || strings.Contains(aws.ToString(r.ErrorMessage), e.lake.resultsDir) {
		t.Errorf("GetQueryResults of it: %v, %q", err, aws.ToString(r.ErrorMessage))
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "query="+q) && strings.Contains(l, "level=ERROR") {
			line = l
		}
	}
	if !strings.Contains(line, e.lake.resultsDir) {
		t.Errorf("no error logged with the query ID and the cause; log:\n%s", logs.String())
	}
}
