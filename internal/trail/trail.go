// Package trail implements CloudTrail trails: the trail API (CreateTrail,
// StartLogging, GetTrailStatus, PutEventSelectors, ...), the registry that
// keeps trails in the data dir, event selection, and delivery of the
// selected records as log files to buckets in AWS's layout.
//
// A trail delivers every record the store holds that it selects and that
// was stored while it was logging: the registry keeps, per trail, the
// store's append sequence number up to which it has delivered, and moves it
// only after the bucket accepted the files (see docs/trails.md).
package trail

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Trail is one trail, in its home region.
type Trail struct {
	Name       string `json:"name"`
	Account    string `json:"account"`
	HomeRegion string `json:"homeRegion"`

	S3BucketName               string `json:"s3BucketName"`
	S3KeyPrefix                string `json:"s3KeyPrefix,omitempty"`
	IncludeGlobalServiceEvents bool   `json:"includeGlobalServiceEvents"`
	IsMultiRegionTrail         bool   `json:"isMultiRegionTrail"`
	LogFileValidationEnabled   bool   `json:"logFileValidationEnabled"`
	IsOrganizationTrail        bool   `json:"isOrganizationTrail"`
	// OrganizationID is the organization of an organization trail.
	OrganizationID string `json:"organizationId,omitempty"`

	// Selectors: exactly one kind is set (a new trail has the default
	// basic selector).
	EventSelectors         []EventSelector         `json:"eventSelectors,omitempty"`
	AdvancedEventSelectors []AdvancedEventSelector `json:"advancedEventSelectors,omitempty"`
	CustomSelectors        bool                    `json:"customSelectors,omitempty"`
	InsightSelectors       []InsightSelector       `json:"insightSelectors,omitempty"`

	Tags []Tag `json:"tags,omitempty"`

	Logging bool `json:"logging"`
	// Draining is set by StopLogging: the trail still delivers the records
	// of events up to StopLoggingTime (see drainWindow).
	Draining bool `json:"draining,omitempty"`
	// DeliverFrom is the time from which the trail delivers events: the
	// StartLoggingTime, or an earlier one when logging restarted while the
	// trail was still draining (then the stopped gap is delivered too:
	// rather twice than never).
	DeliverFrom      time.Time `json:"deliverFrom,omitzero"`
	StartLoggingTime time.Time `json:"startLoggingTime,omitzero"`
	StopLoggingTime  time.Time `json:"stopLoggingTime,omitzero"`

	// Position is the append sequence number of the store up to which the
	// trail has delivered (or skipped, while not logging).
	Position                  int64     `json:"position"`
	LatestDeliveryTime        time.Time `json:"latestDeliveryTime,omitzero"`
	LatestDeliveryAttemptTime time.Time `json:"latestDeliveryAttemptTime,omitzero"`
	LatestDeliveryError       string    `json:"latestDeliveryError,omitempty"`
	LatestDigestDeliveryTime  time.Time `json:"latestDigestDeliveryTime,omitzero"`
	LatestDigestDeliveryError string    `json:"latestDigestDeliveryError,omitempty"`
	// Pending is the batch a failed delivery left half written (see
	// Pending); nil when none.
	Pending *Pending `json:"pending,omitempty"`
	// SetAside counts the records the trail could not deliver and left
	// behind for good (their log key was refused): they stay in the
	// store, logged and counted, and never block the records after them.
	SetAside int64 `json:"setAside,omitempty"`
	// SetAsideCode and SetAsideTime are the error code and time of the
	// latest set-aside: LatestDeliveryError shows the code for
	// setAsideVisible after it, clean deliveries or not.
	SetAsideCode string    `json:"setAsideCode,omitempty"`
	SetAsideTime time.Time `json:"setAsideTime,omitzero"`

	// org is the organization of an organization trail (from the config).
	org *Organization
}

// selectsAccount reports whether t delivers the events of account.
func (t *Trail) selectsAccount(account string) bool {
	return account == t.Account || t.org != nil && t.org.has(account)
}

// Pending is a batch whose delivery failed part way: the groups of the
// records up to Upto (account/region/folder, as groupKey spells them)
// that were written or set aside already. A retry writes only the other
// groups, so a failure never rewrites earlier files into duplicates.
type Pending struct {
	Upto int64    `json:"upto"`
	Done []string `json:"done,omitempty"`
	// Wrote is set once the bucket accepted a file of the batch: a
	// refusal of another key is then about that key, not the bucket.
	Wrote bool `json:"wrote,omitempty"`
}

// Tag is a trail's tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value,omitempty"`
}

// ARN returns the trail's ARN.
func (t *Trail) ARN() string {
	return "arn:aws:cloudtrail:" + t.HomeRegion + ":" + t.Account + ":trail/" + t.Name
}

// Covers reports whether the trail receives the events of region.
func (t *Trail) Covers(region string) bool {
	return t.IsMultiRegionTrail || region == t.HomeRegion
}

// Registry keeps the trails of every account in a JSON file, rewritten
// atomically on every change (trails are few: a handful per region).
type Registry struct {
	path string

	mu     sync.Mutex
	trails map[string]*Trail // by ARN
	org    *Organization
}

// registryFile is the registry's file in the data dir.
const registryFile = "trails.json"

// OpenRegistry reads the registry kept in dir (empty when the file does
// not exist yet).
func OpenRegistry(dir string) (*Registry, error) {
	r := &Registry{path: filepath.Join(dir, registryFile), trails: map[string]*Trail{}}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trail: read %s: %w", r.path, err)
	}
	var list []*Trail
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("trail: %s is damaged: %w", r.path, err)
	}
	for _, t := range list {
		r.trails[t.ARN()] = t
	}
	return r, nil
}

// saveLocked writes the registry: a temporary file, fsync, rename.
func (r *Registry) saveLocked() error {
	if r.path == "" {
		return nil // a registry in memory (tests)
	}
	list := make([]*Trail, 0, len(r.trails))
	for _, t := range r.trails {
		list = append(list, t)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ARN() < list[j].ARN() })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("trail: save: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(r.path), registryFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("trail: save: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), r.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("trail: save: %w", err)
	}
	// Best effort: the rename is done, so the change stands even if the
	// folder's sync (durability across power loss) fails.
	if d, err := os.Open(filepath.Dir(r.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// update runs fn on the registry under its lock and saves it when fn
// returns nil; on an error of fn or of the save nothing changes.
func (r *Registry) update(fn func(trails map[string]*Trail) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	before := make(map[string]Trail, len(r.trails))
	for k, t := range r.trails {
		before[k] = *t
	}
	err := fn(r.trails)
	if err == nil {
		err = r.saveLocked()
	}
	if err != nil {
		// Put every trail back as it was.
		for k := range r.trails {
			if _, ok := before[k]; !ok {
				delete(r.trails, k)
			}
		}
		for k, t := range before {
			if cur := r.trails[k]; cur != nil {
				*cur = t
			} else {
				t := t
				r.trails[k] = &t
			}
		}
	}
	return err
}

// snapshot returns copies of the trails fn selects, sorted by ARN.
func (r *Registry) snapshot(fn func(t *Trail) bool) []Trail {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Trail
	for _, t := range r.trails {
		if fn == nil || fn(t) {
			out = append(out, *t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ARN() < out[j].ARN() })
	return out
}

// Trails returns copies of every trail, sorted by ARN.
func (r *Registry) Trails() []Trail { return r.snapshot(nil) }

// view runs fn on the registry under its lock, without saving.
func (r *Registry) view(fn func(trails map[string]*Trail) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fn(r.trails)
}

// sortedTrails returns the trails sorted by ARN.
func sortedTrails(trails map[string]*Trail) []*Trail {
	out := make([]*Trail, 0, len(trails))
	for _, t := range trails {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ARN() < out[j].ARN() })
	return out
}
