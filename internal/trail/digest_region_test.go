package trail

import (
	"context"
	"testing"
	"time"
)

// TestDigestStatusIsACode: a digest the bucket does not take shows an
// S3-style code in the trail's status, never raw error text; a trail
// homed in a region that is no region (created before regions were
// validated) gets no home-region digest chain.
func TestDigestStatusIsACode(t *testing.T) {
	f := newFixture(t, "")
	f.w.cfg.Bucket = func(string) (Bucket, bool) { return nil, false }
	f.clk.t = f.t0.Add(2 * time.Hour)
	f.w.WriteDue(context.Background())
	arn := f.trails.trails[0].ARN()
	if got := f.trails.status[arn]; got != "NoSuchBucket" {
		t.Errorf("LatestDigestDeliveryError = %q; want an S3 error code", got)
	}

	g := newFixture(t, "")
	g.trails.trails[0].HomeRegion = ".."
	g.clk.t = g.t0.Add(2 * time.Hour)
	g.w.WriteDue(context.Background())
	if len(g.w.chains) != 0 {
		t.Errorf("a trail homed in '..' has digest chains: %v", g.w.chains)
	}
}
