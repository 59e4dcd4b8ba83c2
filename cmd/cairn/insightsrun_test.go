package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestInsightsRunsAreAccountScoped: the detector a server runs on request
// (cairn's CairnInsights_20251101 extension) sees only the caller's
// account and signed region, answers a run's state only to its account,
// refuses malformed input with AWS-shaped errors, and records its calls in
// the caller's account.
func TestInsightsRunsAreAccountScoped(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 0) + "insights:\n  warm_up: 1h\n"
	cfgPath := filepath.Join(dir, "cairn.yaml")
	writeFile(t, cfgPath, cfg)
	logPath := filepath.Join(dir, "incident.json")
	writeFile(t, logPath, string(burstLog(t))) // alice's account, us-east-1
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"import", "--data-dir", dir, "--config", cfgPath, "--no-progress", logPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("import exited %d: %s", code, stderr.String())
	}
	ts := startServer(t, cfg, dir)
	ctx := context.Background()
	as := func(key, secret, region string) *client.Client { return ts.cairn(t, key, secret, region) }
	aliceC := as("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	bobC := as("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	res, err := aliceC.RunInsights(ctx, client.InsightsRun{DryRun: true})
	if err != nil || len(res.Insights) != 2 || res.Analysed != 5*228+60*12 {
		t.Fatalf("alice's run: %d Insights, %d analysed, %v; want Start and End of the burst over %d records", len(res.Insights), res.Analysed, err, 5*228+60*12)
	}
	// Another account, and another region of the same account, see none
	// of it.
	for name, c := range map[string]*client.Client{"bob": bobC, "alice in eu-west-1": as("AKIAALICE00000000001", "alice-secret-key", "eu-west-1")} {
		res, err := c.RunInsights(ctx, client.InsightsRun{DryRun: true})
		if err != nil || len(res.Insights) != 0 || res.Analysed != 0 || res.Records != 0 {
			t.Errorf("%s's run: %+v, %v; want nothing analysed", name, res, err)
		}
	}
	// A run is answered only to its account and region.
	aliceEU := as("AKIAALICE00000000001", "alice-secret-key", "eu-west-1")
	id, err := aliceC.StartInsights(ctx, client.InsightsRun{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	code := func(err error) string {
		var ie *client.ImportError
		if errors.As(err, &ie) {
			return ie.Code
		}
		return fmt.Sprint(err)
	}
	for _, c := range []struct {
		who  *client.Client
		id   string
		want string
	}{
		{bobC, id, "ResourceNotFoundException"},
		{aliceEU, id, "ResourceNotFoundException"},
		{aliceC, "", "InvalidParameterException"},
		{aliceC, "no-such-run", "ResourceNotFoundException"},
		{aliceC, strings.Repeat("x", 5000), "ResourceNotFoundException"},
		{aliceC, "\x00\u202e", "SerializationException"}, // not text: refused before the handler
	} {
		if _, err := c.who.InsightsRunStatus(ctx, c.id); code(err) != c.want {
			t.Errorf("GetInsightsRun %.20q: %v; want %s", c.id, err, c.want)
		}
	}
	if st, err := aliceC.InsightsRunStatus(ctx, id); err != nil || st.ID != id {
		t.Errorf("alice's own run: %+v, %v", st, err)
	}
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if _, err := aliceC.StartInsights(ctx, client.InsightsRun{Start: t0, End: t0.Add(-time.Hour)}); code(err) != "InvalidTimeRangeException" {
		t.Errorf("EndTime before StartTime: %v", err)
	}
	// The calls are recorded in the caller's account only (stored
	// within the pipeline's batch deadline).
	testwait.UntilNil(t, "alice's 3 StartInsightsRun calls recorded", func() error {
		evs := lookupAll(t, alice(ts), &cloudtrail.LookupEventsInput{
			LookupAttributes: attr(types.LookupAttributeKeyEventName, "StartInsightsRun")})
		if len(evs) < 3 { // two runs and the refused one; the eu-west-1 run is recorded there
			return fmt.Errorf("%d recorded", len(evs))
		}
		return nil
	})
	bob := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	if evs := lookupAll(t, bob, &cloudtrail.LookupEventsInput{
		LookupAttributes: attr(types.LookupAttributeKeyEventName, "StartInsightsRun")}); len(evs) != 1 {
		t.Errorf("bob sees %d StartInsightsRun calls; want his own one", len(evs))
	}
}
