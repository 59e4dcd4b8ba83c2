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
