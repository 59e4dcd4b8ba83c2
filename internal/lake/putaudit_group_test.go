package lake

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
)

// channelTenant is an account with a custom event data store and a
// channel to it.
type channelTenant struct {
	key, account, store, channel string
}

// channelTenants gives each of the two accounts of keys a store of
// custom events ("custom") and a channel ("chan") to it.
func channelTenants(t *testing.T, e *env) []channelTenant {
	t.Helper()
	tenants := []channelTenant{{key: "AKIAAAAAAAAAAAAAAAAA", account: "111111111111"}, {key: "AKIABBBBBBBBBBBBBBBB", account: "222222222222"}}
	for i, tn := range tenants {
		arn, channel := customChannel(t, e.client(tn.key), "chan")
		tenants[i].store, tenants[i].channel = arn[strings.LastIndex(arn, "/")+1:], channel
	}
	return tenants
}

// customChannel makes, for the account c signs for, an event data store of
// custom events ("custom") and a channel named name to it, and returns
// their ARNs.
func customChannel(tb testing.TB, c *cloudtrail.Client, name string) (store, channel string) {
	tb.Helper()
	ctx := context.Background()
	field := "eventCategory"
	st, err := c.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("custom"),
		AdvancedEventSelectors: []types.AdvancedEventSelector{{FieldSelectors: []types.AdvancedFieldSelector{{Field: &field, Equals: []string{"ActivityAuditLog"}}}}}})
	if err != nil {
		tb.Fatal(err)
	}
	ch, err := c.CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String(name), Source: aws.String("Custom"),
		Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: st.EventDataStoreArn}}})
	if err != nil {
		tb.Fatal(err)
	}
	return aws.ToString(st.EventDataStoreArn), aws.ToString(ch.ChannelArn)
}

// TestPutAuditEventsConcurrentCalls: calls of two accounts on many
// connections at once share Lake's transactions (group commit), and each
// answer still matches what is stored: every event a call lists as
// successful is in its account's store, none it lists as failed is, and
// no event lands in the other account's store. Variants in every call:
// good events, a bad checksum, another account's recipient, malformed
// eventData, so that groups mix calls with and without failures.
func TestPutAuditEventsConcurrentCalls(t *testing.T) {
	e := newEnv(t)
	type tenant struct {
		channelTenant
		ok map[string]bool // eventData UIDs acknowledged
		mu sync.Mutex
	}
	var tenants []*tenant
	for _, ct := range channelTenants(t, e) {
		tenants = append(tenants, &tenant{channelTenant: ct, ok: map[string]bool{}})
	}
	const workers, calls = 6, 6
	var wg sync.WaitGroup
	for w := range workers {
		tn := tenants[w%2]
		other := tenants[1-w%2]
		wg.Go(func() {
			for c := range calls {
				name := fmt.Sprintf("W%dC%d", w, c)
				events := []map[string]any{
					{"id": "good1", "eventData": eventData(name+"a", tn.account)},
					{"id": "bad-sum", "eventData": eventData(name+"b", tn.account), "eventDataChecksum": "AAAA"},
					{"id": "good2", "eventData": eventData(name+"c", tn.account)},
					{"id": "other", "eventData": eventData(name+"d", other.account)},
					{"id": "not-json", "eventData": "{" + name},
				}
				status, out := e.put(t, tn.key, "cloudtrail-data", tn.channel, map[string]any{"auditEvents": events})
				if status != 200 {
					t.Errorf("%s: %d %v", name, status, out)
					return
				}
				var okIDs []string
				for _, s := range out["successful"].([]any) {
					okIDs = append(okIDs, s.(map[string]any)["id"].(string))
				}
				if got := strings.Join(okIDs, ","); got != "good1,good2" {
					t.Errorf("%s: successful %s; want good1,good2", name, got)
				}
				if n := len(out["failed"].([]any)); n != 3 {
					t.Errorf("%s: %d failed; want 3 (%v)", name, n, out)
				}
				tn.mu.Lock()
				for _, id := range okIDs {
					tn.ok["u-"+name+map[string]string{"good1": "a", "good2": "c"}[id]] = true
				}
				tn.mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, tn := range tenants {
		rows := runQuery(t, e.client(tn.key), `SELECT eventData.uid AS uid, eventData.recipientAccountId AS rcpt FROM `+tn.store)
		got := map[string]bool{}
		for _, r := range rows {
			if got[r["uid"]] {
				t.Errorf("%s: event %s stored twice", tn.account, r["uid"])
			}
			got[r["uid"]] = true
			if r["rcpt"] != tn.account {
				t.Errorf("%s's store holds an event for %s (%s)", tn.account, r["rcpt"], r["uid"])
			}
			if !tn.ok[r["uid"]] {
				t.Errorf("%s: event %s stored but not acknowledged", tn.account, r["uid"])
			}
		}
		for uid := range tn.ok {
			if !got[uid] {
				t.Errorf("%s: event %s acknowledged but not stored", tn.account, uid)
			}
		}
		if want := workers / 2 * calls * 2; len(got) != want {
			t.Errorf("%s: %d events stored; want %d", tn.account, len(got), want)
		}
	}
}
