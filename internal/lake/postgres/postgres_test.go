package postgres

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// TestClassify: PostgreSQL's objections to the statement's names, types
// and values are the caller's to read; every other failure (connection,
// disk, internal, cairn's own privileges) is kept for the log.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		sent string // "" = not sent
		oom  bool
	}{
		{&pgconn.PgError{Code: "42703", Message: `column "x" does not exist`}, `column "x" does not exist`, false},
		{&pgconn.PgError{Code: "42883", Message: `function lake.element_at(integer, integer) does not exist`, Hint: "No function matches"}, `function element_at(integer, integer) does not exist`, false},
		{&pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type timestamp: "x"`}, `invalid input syntax for type timestamp: "x"`, false},
		{&pgconn.PgError{Code: "22012", Message: `division by zero`}, `division by zero`, false},
		{&pgconn.PgError{Code: "42501", Message: `permission denied for table lake_events`}, "", false},
		{&pgconn.PgError{Code: "53200", Message: `out of memory`}, "", true},
		{&pgconn.PgError{Code: "53100", Message: `could not extend file "base/16384/16385": No space left on device`}, "", false},
		{&pgconn.PgError{Code: "XX000", Message: `unexpected chunk number 0 for toast value 1 in pg_toast_2619`}, "", false},
		{&pgconn.PgError{Code: "57P01", Message: `terminating connection due to administrator command`}, "", false},
		{&pgconn.PgError{Code: "08006", Message: `connection failure`}, "", false},
		{fmt.Errorf("dial tcp 10.0.0.5:5432: connect: connection refused"), "", false},
	} {
		got := Classify(c.err)
		var se *engine.StatementError
		switch {
		case c.sent != "" && (!errors.As(got, &se) || se.Msg != c.sent):
			t.Errorf("Classify(%v) = %v; want a statement error %q", c.err, got, c.sent)
		case c.sent == "" && errors.As(got, &se):
			t.Errorf("Classify(%v) = statement error %q; want it kept for the log", c.err, se.Msg)
		case c.oom != errors.Is(got, engine.ErrOutOfMemory):
			t.Errorf("Classify(%v) = %v; out of memory: %v", c.err, got, c.oom)
		case c.sent == "" && !errors.Is(got, c.err):
			t.Errorf("Classify(%v) = %v; want it wrapped", c.err, got)
		}
	}
}
