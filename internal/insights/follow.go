package insights

import (
	"strings"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Following hands the live runner the observations of the records a store
// commits, as it commits them (the DuckDB store's OnCommitted), so that a
// runner following a bulk append does not read them back through the feed.
// Through `cairn import --endpoint-url` at 100k records/s the store's tail
// (32 MiB, about 24k records) is passed within the first second whatever
// the runner's waits (Wake, busyPoll): the runner then read nearly every
// record back from the table and the sealed blocks, paced behind the
// import and on after it, 1.3–1.6 CPU-s of the server's at 1M (issue 15,
// session 36; docs/insights.md). An offline import's Importing does the
// same for its own detector.
//
// It holds runs of consecutive sequence numbers: a commit that does not
// follow the one before (an append that did not tell, a restart) starts
// the run again, and what the run does not hold the runner reads from the
// feed, as before. It keeps at most maxObs observations and maxChunks
// commits, dropping the oldest (the runner reads those from the feed): a
// runner that does not run (another node holds the Insights lease) costs
// a bounded amount of memory.
type Following struct {
	mu     sync.Mutex
	chunks []followed
	next   int64 // the sequence number expected next; 0: none yet
	obs    int   // observations in chunks
	intern map[string]string
}

// followed is one commit's observations: the records first..last, of which
// obs[i] is the one of sequence number seqs[i] (the records Observe takes
// only).
type followed struct {
	first, last int64
	seqs        []int64
	obs         []Observation
}

const (
	// maxFollowedObs bounds the observations a Following holds: about
	// 120 bytes each, 30 MiB, as the store's tail.
	maxFollowedObs = 256 << 10
	// maxFollowedChunks bounds the commits it holds.
	maxFollowedChunks = 16 << 10
	// maxInterned bounds the strings it shares; past it the map starts
	// again (hostile variety costs copies, not memory).
	maxInterned = 64 << 10
)

// NewFollowing returns an empty Following.
func NewFollowing() *Following {
	return &Following{intern: map[string]string{}}
}

// Committed takes the records an append committed, at sequence numbers
// first, first+1, …, in the order of the store's commits. It keeps nothing
// of recs (the strings it keeps are copies).
func (f *Following) Committed(first int64, recs []*audit.Record) {
	if len(recs) == 0 {
		return
	}
	c := followed{first: first, last: first + int64(len(recs)) - 1}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range recs {
		o, ok := Observe(*r)
		if !ok {
			continue
		}
		// The feed gives whole seconds.
		o.Time = time.Unix(o.Time.Unix(), 0).UTC()
		o.Account, o.Region = f.str(o.Account), f.str(o.Region)
		o.EventSource, o.EventName, o.ErrorCode = f.str(o.EventSource), f.str(o.EventName), f.str(o.ErrorCode)
		c.seqs = append(c.seqs, first+int64(i))
		c.obs = append(c.obs, o)
	}
	if first != f.next {
		f.dropLocked(len(f.chunks)) // not consecutive: start again
	}
	f.chunks = append(f.chunks, c)
	f.obs += len(c.obs)
	f.next = c.last + 1
	for len(f.chunks) > 1 && (f.obs > maxFollowedObs || len(f.chunks) > maxFollowedChunks) {
		f.dropLocked(1)
	}
}

// dropLocked forgets the n oldest commits.
func (f *Following) dropLocked(n int) {
	for i := range f.chunks[:n] {
		f.obs -= len(f.chunks[i].obs)
		f.chunks[i] = followed{}
	}
	f.chunks = f.chunks[n:]
}

// str returns s as a string of its own, shared by equal ones.
func (f *Following) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := f.intern[s]; ok {
		return v
	}
	if len(f.intern) >= maxInterned {
		clear(f.intern)
	}
	v := strings.Clone(s)
	f.intern[v] = v
	return v
}

// take returns the observations of the records after sequence number
// after, up to the end of a commit, and the sequence number of the last
// record they stand for; ok is false when the Following does not hold the
// record after after (the runner reads the feed). It forgets what it
// returns and what came before.
func (f *Following) take(after int64) (obs []Observation, last int64, ok bool) {
	if f == nil {
		return nil, 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for n < len(f.chunks) && f.chunks[n].last <= after {
		n++
	}
	f.dropLocked(n)
	if len(f.chunks) == 0 || f.chunks[0].first > after+1 {
		return nil, 0, false
	}
	c := f.chunks[0]
	f.dropLocked(1)
	i := 0
	for i < len(c.seqs) && c.seqs[i] <= after {
		i++
	}
	return c.obs[i:], c.last, true
}

// ready reports whether take(after) would return observations.
func (f *Following) ready(after int64) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.chunks {
		if c.last > after {
			return c.first <= after+1
		}
	}
	return false
}
