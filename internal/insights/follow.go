package insights

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

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
// feed, as before. It keeps at most maxFollowedObs observations (and
// maxFollowedObsBytes of them, their strings counted: a record's fields
// may be long) and maxFollowedChunks commits, dropping the oldest (the runner reads those from the feed): a
// runner that does not run (another node holds the Insights lease) costs
// a bounded amount of memory.
//
// A commit's records are turned into observations by the runner when it
// takes them, not on the store's commit path (which the next commit waits
// for), as long as the commits held so unconverted reference at most
// maxFollowedRaw bytes of raw JSON (the records the store's tail holds as
// well) and maxFollowedObs records; past that the oldest are converted at the commit, and what they
// referenced is let go.
type Following struct {
	mu     sync.Mutex
	chunks []followed
	next   int64 // the sequence number expected next; 0: none yet
	obs    int   // observations in chunks
	obsB   int64 // their bytes (obsBytes)
	raw    int64 // raw bytes of the records of the chunks not converted
	pend   int   // records of the chunks not converted
	conv   int   // chunks[:conv] are converted
	intern interner
	// own is the runner's interner (take converts on its goroutine,
	// outside mu).
	own interner
}

// followed is one commit: the records first..last; recs until converted
// (raw bytes of raw JSON), then obs, of which obs[i] is the observation of
// sequence number seqs[i] (of the records Observe takes only).
type followed struct {
	first, last int64
	recs        []*audit.Record
	raw         int64
	seqs        []int64
	obs         []Observation
	obsB        int64 // obs's bytes (obsBytes), once converted
}

const (
	// maxFollowedObs bounds the observations a Following holds: about
	// 120 bytes each, 30 MiB, as the store's tail.
	maxFollowedObs = 256 << 10
	// maxFollowedObsBytes bounds their bytes, each one's strings counted
	// whole (obsBytes: ~190 bytes for AWS's names, so maxFollowedObs
	// binds first), against records whose fields are long.
	maxFollowedObsBytes = 64 << 20
	// maxFollowedChunks bounds the commits it holds.
	maxFollowedChunks = 16 << 10
	// maxFollowedRaw bounds the raw JSON of the records held
	// unconverted: as much as the store's tail keeps (32 MiB).
	maxFollowedRaw = 32 << 20
	// maxInterned bounds the strings it shares; past it the map starts
	// again (hostile variety costs copies, not memory).
	maxInterned = 64 << 10
)

// NewFollowing returns an empty Following.
func NewFollowing() *Following {
	return &Following{}
}

// Committed takes the records an append committed, at sequence numbers
// first, first+1, …, in the order of the store's commits. It keeps recs'
// records (not the slice) until they are converted: the store's callers
// do not change records once handed over.
func (f *Following) Committed(first int64, recs []*audit.Record) {
	if len(recs) == 0 {
		return
	}
	c := followed{first: first, last: first + int64(len(recs)) - 1, recs: slices.Clone(recs)}
	for _, r := range recs {
		c.raw += int64(len(r.Raw))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if first != f.next {
		f.dropLocked(len(f.chunks)) // not consecutive: start again
	}
	f.chunks = append(f.chunks, c)
	f.raw += c.raw
	f.pend += len(c.recs)
	f.next = c.last + 1
	for (f.raw > maxFollowedRaw || f.pend > maxFollowedObs) && f.conv < len(f.chunks) {
		c := &f.chunks[f.conv]
		f.raw -= c.raw
		f.pend -= len(c.recs)
		c.convert(&f.intern)
		f.obs += len(c.obs)
		f.obsB += c.obsB
		f.conv++
	}
	for len(f.chunks) > 1 && (f.obs > maxFollowedObs || f.obsB > maxFollowedObsBytes || len(f.chunks) > maxFollowedChunks) {
		f.dropLocked(1)
	}
}

// convert turns c's records into observations, its strings copied by in.
func (c *followed) convert(in *interner) {
	for i, r := range c.recs {
		o, ok := Observe(*r)
		if !ok {
			continue
		}
		// The feed gives whole seconds.
		o.Time = time.Unix(o.Time.Unix(), 0).UTC()
		o.Account, o.Region = in.str(o.Account), in.str(o.Region)
		o.EventSource, o.EventName, o.ErrorCode = in.str(o.EventSource), in.str(o.EventName), in.str(o.ErrorCode)
		c.seqs = append(c.seqs, c.first+int64(i))
		c.obs = append(c.obs, o)
		c.obsB += obsBytes(o)
	}
	c.recs, c.raw = nil, 0
}

// obsBytes is what holding o costs at most: the observation, its sequence
// number and its strings (counted whole, although equal ones are shared).
func obsBytes(o Observation) int64 {
	return int64(unsafe.Sizeof(o)) + 8 + int64(len(o.Account)+len(o.Region)+len(o.EventSource)+len(o.EventName)+len(o.ErrorCode))
}

// dropLocked forgets the n oldest commits.
func (f *Following) dropLocked(n int) {
	for i := range f.chunks[:n] {
		f.obs -= len(f.chunks[i].obs)
		f.obsB -= f.chunks[i].obsB
		f.raw -= f.chunks[i].raw
		f.pend -= len(f.chunks[i].recs)
		f.chunks[i] = followed{}
	}
	f.chunks = f.chunks[n:]
	f.conv = max(f.conv-n, 0)
}

// interner shares the strings of observations: the detector keeps its
// series' names, and the records' strings point into their files' bytes.
type interner map[string]string

// str returns s as a string of its own, shared by equal ones.
func (in *interner) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := (*in)[s]; ok {
		return v
	}
	if *in == nil || len(*in) >= maxInterned {
		*in = make(interner) // hostile variety: start again
	}
	v := strings.Clone(s)
	(*in)[v] = v
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
	c, ok := f.pop(after)
	if !ok {
		return nil, 0, false
	}
	if c.recs != nil {
		c.convert(&f.own)
	}
	i := 0
	for i < len(c.seqs) && c.seqs[i] <= after {
		i++
	}
	return c.obs[i:], c.last, true
}

// pop forgets the commits up to after and returns the one holding the
// record after after, if held.
func (f *Following) pop(after int64) (followed, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for n < len(f.chunks) && f.chunks[n].last <= after {
		n++
	}
	f.dropLocked(n)
	if len(f.chunks) == 0 || f.chunks[0].first > after+1 {
		return followed{}, false
	}
	c := f.chunks[0]
	f.dropLocked(1)
	return c, true
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
