package lake

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
)

// TestStoreNamesShadowingInternalTables: a store named as one of the
// engine's own tables or schemas is only a name. Another account naming it
// (or the store's ID) in FROM reads nothing of it, and nobody reaches the
// internal table through it: each statement is refused with an
// AWS-shaped error, never answered with rows.
func TestStoreNamesShadowingInternalTables(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client("AKIAAAAAAAAAAAAAAAAA"), e.client("AKIABBBBBBBBBBBBBBBB")
	var ids []string
	for _, name := range []string{"events", "main", "information_schema", "duckdb_tables", "lake_meta", "events_shape", "temp"} {
		cr, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(name)})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		arn := aws.ToString(cr.EventDataStoreArn)
		ids = append(ids, arn[strings.LastIndex(arn, "/")+1:])
	}
	// lake_meta holds the journal's position (journal_seq), events_shape
	// is a temporary table of the engine's.
	internal := []string{`SELECT * FROM events`, `SELECT * FROM main.events`, `SELECT * FROM "events"`,
		`SELECT * FROM information_schema.tables`, `SELECT * FROM duckdb_tables`, `SELECT * FROM main`,
		`SELECT * FROM lake_meta`, `SELECT v FROM main.lake_meta WHERE k = 'journal_seq'`, `SELECT * FROM temp.events_shape`,
		`SELECT * FROM events_shape`}
	stmts := slices.Clone(internal)
	for _, id := range ids {
		stmts = append(stmts, `SELECT * FROM `+id)
	}
	for _, c := range []struct {
		who  string
		cl   *cloudtrail.Client
		stmt []string
	}{{"bob", b, stmts}, {"alice", a, internal}} {
		for _, stmt := range c.stmt {
			_, err := c.cl.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(stmt)})
			if got := code(err); got == "" || strings.HasPrefix(got, "Internal") {
				t.Errorf("%s: %s: %v; want an AWS-shaped refusal", c.who, stmt, err)
			}
		}
	}
}
