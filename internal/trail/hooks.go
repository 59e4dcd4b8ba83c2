package trail

import (
	"context"
	"sort"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// SetOrganization sets the organization (nil: none). Organization trails
// created before keep their organization ID; their member accounts follow
// the configuration.
func (r *Registry) SetOrganization(o *audit.Organization) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.org = o
	for _, m := range []map[string]*Trail{r.trails, r.inflight, r.staged} {
		for _, t := range m {
			r.attachLocked(t)
		}
	}
}

// attachLocked gives an organization trail the organization's accounts.
func (r *Registry) attachLocked(t *Trail) {
	t.org = nil
	if t.IsOrganizationTrail && r.org != nil && r.org.ID == t.OrganizationID {
		t.org = r.org
	}
}

// get returns a copy of the trail of an ARN.
func (r *Registry) get(arn string) (Trail, bool) {
	r.fresh()
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.trails[arn]
	if !ok {
		return Trail{}, false
	}
	return *t, true
}

// accounts returns the accounts whose events t delivers: its own, and for
// an organization trail every account of the organization.
func (t *Trail) accounts() []string {
	if t.org == nil {
		return []string{t.Account}
	}
	out := append([]string{t.org.ManagementAccount}, t.org.Members...)
	sort.Strings(out)
	return out
}

// setDigestStatus records the outcome of a digest delivery, shown by
// GetTrailStatus as LatestDigestDeliveryTime (on success) and
// LatestDigestDeliveryError ("" clears it). A shared registry's write
// carries ctx's lease.Fence (the digest writer's job's): once another node
// holds the lease it is refused with an error wrapping lease.ErrFenced.
func (r *Registry) setDigestStatus(ctx context.Context, arn string, at time.Time, deliveryErr string) error {
	return r.updateCtx(ctx, func(trails map[string]*Trail) error {
		t := trails[arn]
		if t == nil {
			return nil
		}
		t.LatestDigestDeliveryError = deliveryErr
		if deliveryErr == "" {
			t.LatestDigestDeliveryTime = at
		}
		return nil
	})
}

// InsightsEnabled returns the Insights types enabled on the logging trails
// that deliver the events of account in region, sorted, without repeats.
// A shared registry answers from the trails last read (it is asked for
// every batch of events; the deliverer's and the API's reads refresh it).
func (r *Registry) InsightsEnabled(account, region string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, t := range r.trails {
		if !t.Logging || !t.selectsAccount(account) || !t.Covers(region) {
			continue
		}
		for _, s := range t.InsightSelectors {
			seen[s.InsightType] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// folder names of the bucket layout (facts §4.1).
const (
	folderLogs     = "CloudTrail"
	folderInsights = "CloudTrail-Insight"
	folderDigests  = "CloudTrail-Digest"
)

// keyPrefix returns the folder under which t writes account's files of
// region in folder (folderLogs, folderInsights, folderDigests), ending in
// "/": [S3KeyPrefix/]AWSLogs/[org-id/]account/folder/region/.
func (t *Trail) keyPrefix(account, folder, region string) string {
	p := ""
	if t.S3KeyPrefix != "" {
		p = t.S3KeyPrefix + "/"
	}
	p += "AWSLogs/"
	if t.IsOrganizationTrail && t.OrganizationID != "" {
		p += t.OrganizationID + "/"
	}
	return p + account + "/" + folder + "/" + region + "/"
}
