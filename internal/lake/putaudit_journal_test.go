package lake

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/lake/duckdb"
)

// TestPutAuditEventsJournalIsolation: PutAuditEvents acknowledged from
// the Lake's journal (a Lake in a file) and a query started right after
// the answer: the query sees every event its account was answered for,
// and never one of the other account, whose calls land in the same
// journal and the same transactions. The other account's calls on this
// account's channel (its ARN, or the ARN with the caller's account put
// in) store nothing and get AWS errors; neither account's query names
// the other's store.
func TestPutAuditEventsJournalIsolation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	type tenant struct {
		channelTenant
		acked []string
	}
	var tenants []*tenant
	for _, ct := range channelTenants(t, e) {
		tenants = append(tenants, &tenant{channelTenant: ct})
	}
	db, _ := e.lake.eng.(*duckdb.DB)
	journaled := 0
	for round := range 4 {
		for i, tn := range tenants {
			other := tenants[1-i]
			// The other tenant's calls on this tenant's channel first:
			// refused, nothing stored.
			for _, ch := range []string{tn.channel, strings.Replace(tn.channel, ":"+tn.account+":", ":"+other.account+":", 1)} {
				name := fmt.Sprintf("R%dT%dX", round, i)
				status, out := e.put(t, other.key, "cloudtrail-data", ch, map[string]any{"auditEvents": []map[string]any{
					{"id": "x", "eventData": eventData(name, tn.account)}, {"id": "y", "eventData": eventData(name+"o", other.account)}}})
				if status < 400 || status >= 500 || out["__type"] == nil || out["message"] == nil && out["Message"] == nil {
					t.Errorf("%s on %s's channel %s: %d %v; want an AWS error", other.account, tn.account, ch, status, out)
				}
			}
			var events []map[string]any
			for j := range 3 {
				name := fmt.Sprintf("R%dT%dE%d", round, i, j)
				events = append(events, map[string]any{"id": fmt.Sprint("e", j), "eventData": eventData(name, tn.account)})
				tn.acked = append(tn.acked, "u-"+name)
			}
			status, out := e.put(t, tn.key, "cloudtrail-data", tn.channel, map[string]any{"auditEvents": events})
			if status != 200 || len(out["successful"].([]any)) != len(events) {
				t.Fatalf("%s: PutAuditEvents: %d %v", tn.account, status, out)
			}
			if db != nil && db.Pending() > 0 {
				journaled++
			}
			// Right after the answer: exactly what was acknowledged.
			rows := runQuery(t, e.client(tn.key), `SELECT eventData.uid AS uid, eventData.recipientAccountId AS rcpt FROM `+tn.store)
			var got []string
			for _, r := range rows {
				if r["rcpt"] != tn.account {
					t.Errorf("%s's query answered an event of %s (%s)", tn.account, r["rcpt"], r["uid"])
				}
				got = append(got, r["uid"])
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tn.acked))
			if !slices.Equal(got, want) {
				t.Errorf("round %d: %s's query right after the answer saw %v; want %v", round, tn.account, got, want)
			}
			for _, stmt := range []string{`SELECT count(*) FROM ` + other.store,
				`SELECT eventData.uid FROM ` + tn.store + ` UNION ALL SELECT eventData.uid FROM ` + other.store} {
				if _, err := e.client(tn.key).StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(stmt)}); code(err) != "EventDataStoreNotFoundException" {
					t.Errorf("%s: %s: %v; want EventDataStoreNotFoundException", tn.account, stmt, err)
				}
			}
		}
	}
	t.Logf("%d of 8 calls' events were still in the journal when the answer came", journaled)
}
