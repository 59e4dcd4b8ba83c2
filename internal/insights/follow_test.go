package insights

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// followRecs returns n records from seq first on: management writes (each
// one an observation) but every third a read (none).
func followRecs(first int64, n int) []*audit.Record {
	out := make([]*audit.Record, n)
	for i := range out {
		ro := audit.False
		if (first+int64(i))%3 == 0 {
			ro = audit.True
		}
		out[i] = &audit.Record{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement,
			EventSource: "s3.amazonaws.com", EventName: fmt.Sprint("Put", first+int64(i)), ReadOnly: ro,
			Time: time.Unix(1_800_000_000+first+int64(i), 500), Raw: []byte(`{}`)}
	}
	return out
}

// names are the event names of obs (each one's seq).
func names(obs []Observation) string {
	s := ""
	for _, o := range obs {
		s += o.EventName[3:] + " "
	}
	return s
}

// TestFollowingTake: the commits are taken in order, from the runner's
// position on (within a commit too), the reads left out; a position the
// Following does not hold (before a gap in the commits, or dropped) is
// read from the feed.
func TestFollowingTake(t *testing.T) {
	f := NewFollowing()
	f.Committed(1, followRecs(1, 4))   // 1..4: observations 1 2 4
	f.Committed(5, followRecs(5, 3))   // 5..7: 5 7
	f.Committed(20, followRecs(20, 2)) // a gap: 1..7 forgotten
	if _, _, ok := f.take(0); ok {
		t.Fatal("took records forgotten at a gap")
	}
	if f.ready(7) || f.ready(0) {
		t.Fatal("ready before the gap")
	}
	if !f.ready(19) {
		t.Fatal("not ready at the gap's end")
	}
	obs, last, ok := f.take(19)
	if !ok || last != 21 || names(obs) != "20 " || obs[0].Time != time.Unix(1_800_000_020, 0).UTC() {
		t.Fatalf("take(19) = %q, %d, %v; want 20 (whole seconds), up to 21", names(obs), last, ok)
	}
	f.Committed(22, followRecs(22, 5)) // 22..26: 22 23 25 26
	f.Committed(27, followRecs(27, 2)) // 27..28: 28
	// The runner read 22..23 from the feed meanwhile.
	if obs, last, ok = f.take(23); !ok || last != 26 || names(obs) != "25 26 " {
		t.Fatalf("take(23) = %q, %d, %v; want 25 26 up to 26", names(obs), last, ok)
	}
	if obs, last, ok = f.take(26); !ok || last != 28 || names(obs) != "28 " {
		t.Fatalf("take(26) = %q, %d, %v; want 28 up to 28", names(obs), last, ok)
	}
	if _, _, ok = f.take(28); ok || f.ready(28) {
		t.Fatal("took past the last commit")
	}
	if f.obs != 0 || len(f.chunks) != 0 {
		t.Fatalf("holds %d observations in %d commits after taking all", f.obs, len(f.chunks))
	}
}

// TestFollowingBounded: a runner that takes nothing (another node holds
// the lease) leaves at most maxFollowedObs records unconverted (and
// maxFollowedRaw bytes of them) and maxFollowedObs observations held, the
// oldest dropped; the runner then reads those from the feed.
func TestFollowingBounded(t *testing.T) {
	f := NewFollowing()
	seq := int64(1)
	for seq < 4*maxFollowedObs {
		f.Committed(seq, followRecs(seq, 3000))
		seq += 3000
	}
	if f.obs > maxFollowedObs || f.obs < maxFollowedObs/2 || f.pend > maxFollowedObs || f.pend < maxFollowedObs/2 {
		t.Fatalf("holds %d observations and %d records; want at most %d of each, and most of them", f.obs, f.pend, maxFollowedObs)
	}
	if _, _, ok := f.take(0); ok {
		t.Fatal("took dropped commits")
	}
	first := f.chunks[0].first
	if obs, _, ok := f.take(first - 1); !ok || len(obs) != 2000 {
		t.Fatalf("the oldest held: %d observations, %v; want 2000", len(obs), ok)
	}
	if last := f.chunks[len(f.chunks)-1]; last.recs == nil {
		t.Fatal("the newest commit was converted")
	}
	// Records of 1 MiB each: maxFollowedRaw of them at most unconverted.
	big := followRecs(seq, 64)
	for _, r := range big {
		r.Raw = make([]byte, 1<<20)
	}
	f.Committed(seq, big)
	seq += 64
	if f.raw > maxFollowedRaw {
		t.Fatalf("holds %d bytes of records unconverted; want at most %d", f.raw, maxFollowedRaw)
	}
	// Records whose event names are 1 MiB each (a hostile file's): their
	// observations' strings count, maxFollowedObsBytes of them at most.
	for range 3 * maxFollowedObsBytes >> 20 {
		r := followRecs(seq, 1)
		r[0].ReadOnly = audit.False
		r[0].EventName = string(make([]byte, 1<<20))
		r[0].Raw = []byte(r[0].EventName)
		f.Committed(seq, r)
		seq++
	}
	if f.obsB > maxFollowedObsBytes+2<<20 {
		t.Fatalf("holds %d bytes of observations; want at most %d and a commit", f.obsB, maxFollowedObsBytes)
	}
	if f.obsB < maxFollowedObsBytes/2 {
		t.Fatalf("holds %d bytes of observations; want most of %d", f.obsB, maxFollowedObsBytes)
	}
	for range 3 * maxFollowedChunks {
		f.Committed(seq, followRecs(seq, 1))
		seq++
	}
	if len(f.chunks) > maxFollowedChunks {
		t.Fatalf("holds %d commits; want at most %d", len(f.chunks), maxFollowedChunks)
	}
}
