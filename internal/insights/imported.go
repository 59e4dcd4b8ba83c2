package insights

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Importing runs the live runner's detector over the records an offline
// import stores, as the store commits them, and saves the runner's state
// at the import's last sequence number: the first serve after the import
// resumes there instead of reading every imported record back through the
// feed (at 10M records that catch-up read and decoded every record again,
// beside the lookups: docs/insights.md, "Imports"). The detector sees the
// records in sequence order, as the runner reading the feed would, so the
// state saved is the one the runner would have built; the Insights it finds
// go into the state, and the runner stores those of the accounts and
// regions that enabled them when it resumes, as it stores what it finds.
//
// Observe is called on the store's writer goroutine: it turns records into
// observations (the strings cloned: the records' share buffers with the
// rest of their file), and a goroutine of its own runs the detector.
type Importing struct {
	path string
	det  *Detector
	now  func() time.Time

	// next is the sequence number Observe expects; broken is set when
	// a batch did not follow the one before (the state would not be the
	// runner's): Finish then saves nothing. Under the writer's lock.
	next   int64
	broken bool
	intern map[string]string

	work chan []Observation
	done chan struct{}
	mu   sync.Mutex // found
	// found are the Insights the detector emitted.
	found []Insight
}

// ErrNotResumable is StartImporting's error when the saved state does not
// stand at the store's last sequence number (the runner had not read
// everything stored, or there is no state and the store holds records):
// the detector cannot take over from it, and the first serve catches up
// through the feed, as before.
var ErrNotResumable = errors.New("insights: the saved state is not at the store's end")

// StartImporting loads the runner's state saved at path, which must stand
// at lastSeq, the store's last sequence number before the import (with no
// state, the store must be empty), and returns an Importing to give the
// import's committed records to. now is the clock of the runner's check
// on records from the future (default time.Now).
func StartImporting(p Params, path string, lastSeq int64, now func() time.Time) (*Importing, error) {
	if now == nil {
		now = time.Now
	}
	im := &Importing{path: path, now: now, intern: map[string]string{}, work: make(chan []Observation, 4), done: make(chan struct{})}
	det, err := NewDetector(p, func(in Insight) {
		im.mu.Lock()
		im.found = append(im.found, in)
		im.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	pos, err := det.load(path)
	switch {
	case errors.Is(err, errNoState):
		pos = 0
	case err != nil:
		return nil, err
	}
	if pos != lastSeq {
		return nil, fmt.Errorf("%w: state at %d, store at %d", ErrNotResumable, pos, lastSeq)
	}
	im.found = det.takeFound()
	im.det, im.next = det, lastSeq+1
	go im.run()
	return im, nil
}

func (im *Importing) run() {
	defer close(im.done)
	for obs := range im.work {
		for _, o := range obs {
			im.det.Observe(o)
		}
	}
}

// Observe takes the records an append committed, at sequence numbers
// first, first+1, …: the store's duckdb.Store.OnCommitted. It keeps
// nothing of recs.
func (im *Importing) Observe(first int64, recs []*audit.Record) {
	if im.broken {
		return
	}
	if first != im.next {
		im.broken = true
		return
	}
	im.next += int64(len(recs))
	// The runner's check, at its read: a record more than 5 minutes in
	// the future would move its scope's clock ahead of every other.
	future := im.now().Add(5 * time.Minute)
	var obs []Observation
	for _, r := range recs {
		o, ok := Observe(*r)
		if !ok || o.Time.After(future) {
			continue
		}
		// The feed gives whole seconds.
		o.Time = time.Unix(o.Time.Unix(), 0).UTC()
		o.Account, o.Region = im.str(o.Account), im.str(o.Region)
		o.EventSource, o.EventName, o.ErrorCode = im.str(o.EventSource), im.str(o.EventName), im.str(o.ErrorCode)
		obs = append(obs, o)
	}
	if len(obs) > 0 {
		im.work <- obs
	}
}

// str returns s as a string of its own (shared by equal ones): the
// detector keeps its series' names.
func (im *Importing) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := im.intern[s]; ok {
		return v
	}
	if len(im.intern) > 1<<20 { // hostile variety: stop sharing, keep copying
		return strings.Clone(s)
	}
	v := strings.Clone(s)
	im.intern[v] = v
	return v
}

// Finish waits for the detector and, when every record committed since
// the start was observed and the store's last sequence number is lastSeq,
// saves the state at lastSeq with the Insights found (saved reports it).
// It must be called once, after the last append.
func (im *Importing) Finish(lastSeq int64) (saved bool, err error) {
	close(im.work)
	<-im.done
	if im.broken || im.next != lastSeq+1 {
		return false, nil
	}
	im.mu.Lock()
	found := im.found
	im.mu.Unlock()
	if err := im.det.saveFound(im.path, lastSeq, found); err != nil {
		return false, err
	}
	return true, nil
}

// Abandon stops the detector without saving.
func (im *Importing) Abandon() {
	im.broken = true
	close(im.work)
	<-im.done
}

// Stats are the detector's counts.
func (im *Importing) Stats() Stats { return im.det.Stats() }
