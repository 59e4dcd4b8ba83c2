package insights

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"

	"github.com/cairn-audit/cairn/internal/atomicfile"
)

// stateVersion is the layout of a saved state; a file of another version
// is ignored (the runner replays the store).
const stateVersion = 1

// savedState is the runner's position in the feed and the detector's whole
// state at that position: series, hourly baselines, pending minutes and
// active Insights. Restored, the detector goes on as if it had never
// stopped.
type savedState struct {
	Version  int
	Params   Params
	Position int64
	Observed int64
	Late     int64
	Dropped  int64
	Scopes   []savedScope
	// Found are Insights found before Position and not stored yet: an
	// offline import's (Importing), which the runner stores when it
	// resumes. A state saved before this field had none (gob leaves it
	// empty).
	Found []Insight
}

type savedScope struct {
	Account, Region    string
	First, Max, Closed int64
	Decreases          bool
	Series             []savedSeries
	// Pending lists, per pending minute, indices into Series, in their
	// order; Watch likewise.
	Pending []savedPending
	Watch   []int
}

type savedPending struct {
	Minute int64
	Series []int
}

type savedSeries struct {
	Key      Key
	Hours    []uint32
	Hour     int64
	Peak     float64
	Mean     float64
	BaseMins int
	Ring     []uint32
	RingMin  []int64
	Last     []uint16
	LastMin  int64
	Decrease bool
	Watched  bool
	Over     int
	OverSum  int64
	Under    int
	Active   bool
	Down     bool
	Start    int64
	Sum      int64
	StartAvg float64
	StartMin int
	BaseAvg  float64
	BaseLen  int
}

// save writes the detector's state at feed position pos to path,
// atomically and durably.
func (d *Detector) save(path string, pos int64) error {
	return d.saveFound(path, pos, nil)
}

// saveFound is save with Insights found and not stored yet.
func (d *Detector) saveFound(path string, pos int64, found []Insight) error {
	return atomicfile.WriteFunc(path, 0o600, func(w io.Writer) error { return d.encodeFound(w, pos, found) })
}

// encode writes the detector's state at feed position pos to w.
func (d *Detector) encode(w io.Writer, pos int64) error { return d.encodeFound(w, pos, nil) }

// encodeFound is encode with Insights found and not stored yet.
func (d *Detector) encodeFound(w io.Writer, pos int64, found []Insight) error {
	st := savedState{Version: stateVersion, Params: d.p, Position: pos,
		Observed: d.stats.Observed, Late: d.stats.Late, Dropped: d.stats.Dropped, Found: found}
	for _, sc := range d.scopes {
		ss := savedScope{Account: sc.key.account, Region: sc.key.region, First: sc.first, Max: sc.max, Closed: sc.closed,
			Decreases: sc.decreases}
		idx := make(map[*series]int, len(sc.series))
		for _, s := range sc.series {
			idx[s] = len(ss.Series)
			ss.Series = append(ss.Series, savedSeries{Key: s.key, Hours: s.hours[:], Hour: s.hour, Peak: s.peak, Mean: s.mean,
				BaseMins: s.baseMins, Ring: s.ring, RingMin: s.ringMin, Last: s.last[:], LastMin: s.lastMin,
				Decrease: s.decrease, Watched: s.watched, Over: s.over, OverSum: s.overSum, Under: s.under,
				Active: s.active, Down: s.down, Start: s.start, Sum: s.sum, StartAvg: s.startAvg, StartMin: s.startMin,
				BaseAvg: s.baseAvg, BaseLen: s.baseLen})
		}
		for m, list := range sc.pending {
			p := savedPending{Minute: m}
			for _, s := range list {
				p.Series = append(p.Series, idx[s])
			}
			ss.Pending = append(ss.Pending, p)
		}
		for _, s := range sc.watch {
			ss.Watch = append(ss.Watch, idx[s])
		}
		st.Scopes = append(st.Scopes, ss)
	}
	bw := bufio.NewWriter(w)
	if err := gob.NewEncoder(bw).Encode(&st); err != nil {
		return err
	}
	return bw.Flush()
}

// errNoState is load's error when there is no state to resume from.
var errNoState = errors.New("no saved state")

// load restores the state saved at path into d (a new detector) and
// returns its feed position. A state saved with other parameters, of
// another version or inconsistent is refused: d is then unchanged.
func (d *Detector) load(path string) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, errNoState
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return d.decode(bufio.NewReader(f), path)
}

// decode restores the state read from r (named path in errors) into d, a
// new detector, and returns its feed position (load).
func (d *Detector) decode(r io.Reader, path string) (int64, error) {
	var st savedState
	if err := gob.NewDecoder(r).Decode(&st); err != nil {
		return 0, fmt.Errorf("decoding %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return 0, fmt.Errorf("%s: version %d, want %d", path, st.Version, stateVersion)
	}
	if !sameParams(st.Params, d.p) {
		return 0, fmt.Errorf("%s: saved with other detector parameters", path)
	}
	ring := int(d.late + 2)
	scopes := make(map[scopeKey]*scope, len(st.Scopes))
	for _, ss := range st.Scopes {
		sc := &scope{key: scopeKey{ss.Account, ss.Region}, first: ss.First, max: ss.Max, closed: ss.Closed,
			decreases: ss.Decreases, series: make(map[Key]*series, len(ss.Series)), pending: make(map[int64][]*series, len(ss.Pending))}
		list := make([]*series, len(ss.Series))
		for i, v := range ss.Series {
			if len(v.Hours) != hoursKept || len(v.Ring) != ring || len(v.RingMin) != ring || len(v.Last) != 60 {
				return 0, fmt.Errorf("%s: series %v has rings of the wrong size", path, v.Key)
			}
			s := &series{key: v.Key, hour: v.Hour, peak: v.Peak, mean: v.Mean, baseMins: v.BaseMins,
				ring: v.Ring, ringMin: v.RingMin, lastMin: v.LastMin, decrease: v.Decrease, watched: v.Watched,
				over: v.Over, overSum: v.OverSum, under: v.Under, active: v.Active, down: v.Down, start: v.Start,
				sum: v.Sum, startAvg: v.StartAvg, startMin: v.StartMin, baseAvg: v.BaseAvg, baseLen: v.BaseLen}
			copy(s.hours[:], v.Hours)
			copy(s.last[:], v.Last)
			list[i] = s
			sc.series[v.Key] = s
		}
		at := func(i int) (*series, error) {
			if i < 0 || i >= len(list) {
				return nil, fmt.Errorf("%s: series index %d out of range", path, i)
			}
			return list[i], nil
		}
		for _, p := range ss.Pending {
			for _, i := range p.Series {
				s, err := at(i)
				if err != nil {
					return 0, err
				}
				sc.pending[p.Minute] = append(sc.pending[p.Minute], s)
			}
		}
		for _, i := range ss.Watch {
			s, err := at(i)
			if err != nil {
				return 0, err
			}
			sc.watch = append(sc.watch, s)
		}
		scopes[sc.key] = sc
	}
	d.scopes = scopes
	d.stats = Stats{Observed: st.Observed, Late: st.Late, Dropped: st.Dropped}
	d.found = st.Found
	return st.Position, nil
}

// takeFound returns the Insights found before the position of the state
// decoded and not stored yet, and forgets them.
func (d *Detector) takeFound() []Insight {
	f := d.found
	d.found = nil
	return f
}

// sameParams reports whether a and b are the same parameters (a missing
// and an empty Decreases list are the same).
func sameParams(a, b Params) bool {
	da, db := a.Decreases, b.Decreases
	a.Decreases, b.Decreases = nil, nil
	return reflect.DeepEqual(a, b) && slices.Equal(da, db)
}
