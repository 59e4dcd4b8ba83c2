package ingest

import (
	"context"
	"sync"
)

// lanes is the pipeline's queue: one FIFO lane of submissions per account,
// drained in turn (round robin), so that an account's backlog delays the
// submissions of another by at most one lane's turn, not by the backlog.
//
// A push blocks while its lane holds laneCap submissions (backpressure on
// that account only). Admission (Pipeline.Admit) keeps every lane far
// below that: it bounds each account's calls in flight and queued records.
type lanes struct {
	laneCap int

	mu    sync.Mutex
	byKey map[string]*lane
	ring  []*lane // lanes holding submissions, in turn order
	next  int     // index in ring of the lane whose turn is next
	subs  int     // submissions queued in every lane
	recs  int     // records queued in every lane
	// ready holds a token while submissions are queued and the writer
	// may not know it yet.
	ready chan struct{}
	// space is closed (and replaced) when a submission leaves a lane.
	space chan struct{}
}

// lane is the queue of one account.
type lane struct {
	key  string
	q    []submission
	recs int
}

func newLanes(laneCap int) *lanes {
	return &lanes{
		laneCap: laneCap,
		byKey:   map[string]*lane{},
		ready:   make(chan struct{}, 1),
		space:   make(chan struct{}),
	}
}

// push appends s to the lane of key, waiting while that lane is full. It
// returns ctx's error if ctx ends first, and ErrClosed once stopped is
// closed.
func (l *lanes) push(ctx context.Context, stopped <-chan struct{}, key string, s submission) error {
	for {
		ok, space := l.add(key, s)
		if ok {
			return nil
		}
		select {
		case <-space:
		case <-stopped:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryPush appends s to the lane of key unless that lane is full.
func (l *lanes) tryPush(key string, s submission) bool {
	ok, _ := l.add(key, s)
	return ok
}

// add appends s to the lane of key if it has room; else it returns a
// channel closed when a submission leaves a lane.
func (l *lanes) add(key string, s submission) (bool, <-chan struct{}) {
	l.mu.Lock()
	ln := l.byKey[key]
	if ln != nil && len(ln.q) >= l.laneCap {
		space := l.space
		l.mu.Unlock()
		return false, space
	}
	if ln == nil {
		ln = &lane{key: key}
		l.byKey[key] = ln
	}
	if len(ln.q) == 0 {
		l.ring = append(l.ring, ln)
	}
	ln.q = append(ln.q, s)
	ln.recs += len(s.records)
	l.subs++
	l.recs += len(s.records)
	l.mu.Unlock()
	select {
	case l.ready <- struct{}{}:
	default:
	}
	return true, nil
}

// pop takes the first submission of the lane whose turn it is, and tells
// its lane's key and how many lanes held submissions before it.
func (l *lanes) pop() (s submission, key string, active int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) == 0 {
		return submission{}, "", 0, false
	}
	active = len(l.ring)
	if l.next >= len(l.ring) {
		l.next = 0
	}
	ln := l.ring[l.next]
	s = ln.q[0]
	ln.q[0] = submission{}
	ln.q = ln.q[1:]
	ln.recs -= len(s.records)
	l.subs--
	l.recs -= len(s.records)
	if len(ln.q) == 0 {
		// The lane leaves the ring; the next lane moves into its place.
		l.ring = append(l.ring[:l.next], l.ring[l.next+1:]...)
		delete(l.byKey, ln.key)
	} else {
		l.next++
	}
	close(l.space)
	l.space = make(chan struct{})
	return s, ln.key, active, true
}

// records returns the number of records queued in the lane of key.
func (l *lanes) records(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ln := l.byKey[key]; ln != nil {
		return ln.recs
	}
	return 0
}

// len returns the number of submissions queued.
func (l *lanes) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.subs
}
