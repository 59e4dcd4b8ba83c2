package lake

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// countingFeed counts the records it hands out.
type countingFeed struct {
	*audittest.MemStore
	read int
}

func (f *countingFeed) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	got, err := f.MemStore.ReadAppended(ctx, after, limit)
	f.read += len(got)
	return got, err
}

// TestSyncSkipsWhatNoStoreTakes: while no event data store ingests (none
// yet, or every one stopped), Sync advances Lake's position over the feed
// without reading (decoding) its records; a store created or restarted
// afterwards gets every record stored after that, as AWS's do, and while a
// store ingests every record it selects is taken.
func TestSyncSkipsWhatNoStoreTakes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	feed := &countingFeed{MemStore: e.store}
	appendNames := func(prefix string, n int) {
		t.Helper()
		var recs []audit.Record
		for i := range n {
			raw := fmt.Sprintf(`{"eventVersion":"1.09","eventTime":"2026-01-02T03:04:%02dZ","eventSource":"s3.amazonaws.com","eventName":"%s%02d","awsRegion":"us-east-1","eventID":"%s","eventType":"AwsApiCall","readOnly":false,"recipientAccountId":"111111111111","eventCategory":"Management","managementEvent":true,"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111111111111:user/u"}}`,
				i%60, prefix, i, audit.NewID())
			r, err := audit.Extract([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		if _, err := e.store.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	sync := func() {
		t.Helper()
		feed.read = 0
		if _, err := e.lake.Sync(ctx, feed); err != nil {
			t.Fatal(err)
		}
	}
	count := func(id, prefix string) string {
		t.Helper()
		rows := runQuery(t, a, `SELECT COUNT(*) AS n FROM `+id+` WHERE eventName LIKE '`+prefix+`%'`)
		return rows[0]["n"]
	}

	appendNames("Before", 30)
	sync()
	if feed.read != 0 {
		t.Errorf("no store: Sync read %d records; want none", feed.read)
	}
	head, _ := e.store.LastSeq(ctx)
	if pos, _ := e.lake.eng.Position(ctx); pos != head {
		t.Errorf("no store: position %d; want the feed's head %d", pos, head)
	}

	out, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("later"), AdvancedEventSelectors: nil})
	if err != nil {
		t.Fatal(err)
	}
	id := storeID(out.EventDataStoreArn)
	appendNames("After", 20)
	sync()
	if feed.read == 0 {
		t.Error("a store ingests: Sync read nothing")
	}
	if got := count(id, "Before"); got != "0" {
		t.Errorf("the new store holds %s records stored before it was created; want 0", got)
	}
	if got := count(id, "After"); got != "20" {
		t.Errorf("the new store holds %s of the 20 records stored after it was created", got)
	}

	// Stopped, it takes nothing (and nothing is read); restarted, it
	// takes what is stored after.
	if _, err := a.StopEventDataStoreIngestion(ctx, &cloudtrail.StopEventDataStoreIngestionInput{EventDataStore: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	appendNames("Stopped", 10)
	sync()
	if feed.read != 0 {
		t.Errorf("every store stopped: Sync read %d records; want none", feed.read)
	}
	if _, err := a.StartEventDataStoreIngestion(ctx, &cloudtrail.StartEventDataStoreIngestionInput{EventDataStore: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	appendNames("Restarted", 15)
	sync()
	if got := count(id, "Stopped"); got != "0" {
		t.Errorf("the store holds %s records stored while it was stopped; want 0", got)
	}
	if got := count(id, "Restarted"); got != "15" {
		t.Errorf("the restarted store holds %s of the 15 records stored after", got)
	}
}

// TestStoreTakesNoRecordStoredBeforeItStarted: while no store ingests,
// Sync keeps the position it skips to in memory (no transaction a tick);
// a store takes only what is appended after it was created, even the
// records appended after the last Sync and before it, and across a
// restart before any Sync (Close writes no position, so this is also
// what a crash leaves: the position on disk is older than the store).
func TestStoreTakesNoRecordStoredBeforeItStarted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	feed := audittest.NewMemStore()
	opts := Options{Feed: feed}
	e := newEnvIn(t, dir, opts)
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	appendNames := func(prefix string, n int) {
		t.Helper()
		var recs []audit.Record
		for i := range n {
			raw := fmt.Sprintf(`{"eventVersion":"1.09","eventTime":"2026-01-02T03:04:%02dZ","eventSource":"s3.amazonaws.com","eventName":"%s%02d","awsRegion":"us-east-1","eventID":"%s","eventType":"AwsApiCall","readOnly":false,"recipientAccountId":"111111111111","eventCategory":"Management","managementEvent":true,"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111111111111:user/u"}}`,
				i%60, prefix, i, audit.NewID())
			r, err := audit.Extract([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		if _, err := feed.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	sync := func(l *Lake) {
		t.Helper()
		if _, err := l.Sync(ctx, feed); err != nil {
			t.Fatal(err)
		}
	}
	appendNames("Old", 30)
	sync(e.lake)
	written, _ := e.lake.eng.Position(ctx)
	inserts := e.lake.eng.Inserts()
	appendNames("Skipped", 10)
	sync(e.lake)
	if got := e.lake.eng.Inserts() - inserts; got != 0 {
		t.Errorf("no store: Sync wrote %d transactions to skip 10 records; want none (the position kept in memory)", got)
	}
	if pos, _ := e.lake.eng.Position(ctx); pos != written {
		t.Errorf("no store: the position written moved from %d to %d; want it kept in memory", written, pos)
	}
	appendNames("Unsynced", 5) // after the last Sync, before the store
	out, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("later")})
	if err != nil {
		t.Fatal(err)
	}
	id := storeID(out.EventDataStoreArn)
	appendNames("After", 20)

	e.lake.Close()
	e = newEnvIn(t, dir, opts)
	a = e.client("AKIAAAAAAAAAAAAAAAAA")
	count := func(prefix string) string {
		t.Helper()
		return runQuery(t, a, `SELECT COUNT(*) AS n FROM `+id+` WHERE eventName LIKE '`+prefix+`%'`)[0]["n"]
	}
	sync(e.lake)
	for prefix, want := range map[string]string{"Old": "0", "Skipped": "0", "Unsynced": "0", "After": "20"} {
		if got := count(prefix); got != want {
			t.Errorf("after a restart: the store holds %s %s records; want %s", got, prefix, want)
		}
	}
	appendNames("Later", 5)
	sync(e.lake)
	if got, got2 := count("After"), count("Later"); got != "20" || got2 != "5" {
		t.Errorf("the store holds %s After and %s Later records; want 20 and 5", got, got2)
	}

	// Stopped, then started again: nothing appended while it was
	// stopped, even what no Sync read before the start.
	if _, err := a.StopEventDataStoreIngestion(ctx, &cloudtrail.StopEventDataStoreIngestionInput{EventDataStore: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	appendNames("Stopped", 10)
	if _, err := a.StartEventDataStoreIngestion(ctx, &cloudtrail.StartEventDataStoreIngestionInput{EventDataStore: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	appendNames("Started", 7)
	sync(e.lake)
	if got, got2 := count("Stopped"), count("Started"); got != "0" || got2 != "7" {
		t.Errorf("the restarted store holds %s Stopped and %s Started records; want 0 and 7", got, got2)
	}
}
