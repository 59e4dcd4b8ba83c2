// Package insights detects unusual rates of write management calls
// (ApiCallRateInsight) and of calls that returned an error
// (ApiErrorRateInsight), and writes them as CloudTrail Insights records.
//
// The Detector runs on event time only: it never reads the clock. Fed the
// same records it gives the same Insights, whether they arrive live from the
// store's append feed or are replayed from imported history (see Retro).
// docs/insights.md explains the algorithm and its parameters. The live
// Runner (NewRunner(RunnerConfig), Run(ctx) error) follows the store's
// append feed.
package insights

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The Insight types.
const (
	CallRate  = "ApiCallRateInsight"
	ErrorRate = "ApiErrorRateInsight"
)

// Params are the detector's parameters. Zero values are not defaults: start
// from DefaultParams.
type Params struct {
	// Lateness is how long after a minute the detector waits, in event
	// time, for its late records before judging it. Records older than the
	// latest record of their account and region by more than Lateness are
	// counted as late and not analysed.
	Lateness time.Duration
	// WarmUp is how much history an account and region needs before any
	// Insight starts (AWS: up to 36 hours after Insights are enabled).
	WarmUp time.Duration
	// Ratio and Z set the threshold of a minute: a count is unusual when it
	// exceeds max(MinCount, Ratio*p + Z*sqrt(p)), p being the busiest hour's
	// typical rate per minute in the baseline (see docs/insights.md).
	Ratio float64
	Z     float64
	// MinCount is the least count per minute that can be unusual.
	MinCount int
	// StartMinutes consecutive unusual minutes start an Insight;
	// EndMinutes consecutive usual minutes end it.
	StartMinutes int
	EndMinutes   int
	// Decreases lists the series whose drops are Insights too.
	Decreases []Match
	// DecreaseWindow is the span over which a drop is judged, in minutes;
	// DecreaseRatio the fraction of the expected count below which it is
	// unusual; DecreaseMinExpected the least expected count in the window
	// for a drop to be judged at all.
	DecreaseWindow      int
	DecreaseRatio       float64
	DecreaseMinExpected float64
	// MaxSeries bounds the number of series tracked per account and region;
	// records of further series are counted as dropped.
	MaxSeries int
}

// Match selects series by event source and name; an empty field matches any.
type Match struct {
	EventSource string
	EventName   string
}

// DefaultParams returns the documented defaults.
func DefaultParams() Params {
	return Params{
		Lateness:            15 * time.Minute,
		WarmUp:              24 * time.Hour,
		Ratio:               1.5,
		Z:                   4,
		MinCount:            10,
		StartMinutes:        3,
		EndMinutes:          5,
		DecreaseWindow:      30,
		DecreaseRatio:       0.2,
		DecreaseMinExpected: 60,
		MaxSeries:           10000,
	}
}

// Validate reports the first parameter out of range.
func (p Params) Validate() error {
	switch {
	case p.Lateness < 0 || p.Lateness > 24*time.Hour:
		return fmt.Errorf("lateness %v: want 0 to 24h", p.Lateness)
	case p.WarmUp < 0 || p.WarmUp > 7*24*time.Hour:
		return fmt.Errorf("warm-up %v: want 0 to 7 days", p.WarmUp)
	case !(p.Ratio >= 1) || p.Ratio > 1000:
		return fmt.Errorf("ratio %v: want 1 to 1000", p.Ratio)
	case !(p.Z >= 0) || p.Z > 100:
		return fmt.Errorf("z %v: want 0 to 100", p.Z)
	case p.MinCount < 1:
		return fmt.Errorf("min count %d: want at least 1", p.MinCount)
	case p.StartMinutes < 1 || p.StartMinutes > 60:
		return fmt.Errorf("start minutes %d: want 1 to 60", p.StartMinutes)
	case p.EndMinutes < 1 || p.EndMinutes > 60:
		return fmt.Errorf("end minutes %d: want 1 to 60", p.EndMinutes)
	case p.DecreaseWindow < 1 || p.DecreaseWindow > 60:
		return fmt.Errorf("decrease window %d: want 1 to 60 minutes", p.DecreaseWindow)
	case !(p.DecreaseRatio > 0) || p.DecreaseRatio >= 1:
		return fmt.Errorf("decrease ratio %v: want more than 0 and less than 1", p.DecreaseRatio)
	case !(p.DecreaseMinExpected >= 1):
		return fmt.Errorf("decrease min expected %v: want at least 1", p.DecreaseMinExpected)
	case p.MaxSeries < 1:
		return fmt.Errorf("max series %d: want at least 1", p.MaxSeries)
	}
	return nil
}

// Observation is what the detector needs of one record.
type Observation struct {
	Time        time.Time
	Account     string
	Region      string
	EventSource string
	EventName   string
	// Write is true for a write management call (readOnly false).
	Write bool
	// ErrorCode is the call's errorCode, "" when it succeeded.
	ErrorCode string
}

// Key identifies a series.
type Key struct {
	Account     string
	Region      string
	InsightType string
	EventSource string
	EventName   string
	ErrorCode   string // ApiErrorRateInsight only
}

// Insight is one state change of a series: its Start or its End.
type Insight struct {
	Key
	State string // "Start" or "End"
	// Start is the first unusual minute; End the first usual one after the
	// Insight (zero in a Start).
	Start, End time.Time
	// Decrease is true for a drop.
	Decrease bool
	// BaselineAverage is the series' mean count per minute over the
	// baseline, BaselineMinutes long; InsightAverage the mean count per
	// minute over InsightMinutes (the confirming minutes in a Start, the
	// whole Insight in an End).
	BaselineAverage float64
	BaselineMinutes int
	InsightAverage  float64
	InsightMinutes  int
}

// Stats counts what the detector did.
type Stats struct {
	Observed int64 // observations counted in a series
	Late     int64 // older than their scope's lateness allowed
	Dropped  int64 // over MaxSeries
	Series   int
}

const (
	hoursKept = 168 // the baseline: 7 days of hourly counts
	week      = hoursKept * 60
)

// Detector finds Insights in a stream of observations. It is not safe for
// concurrent use.
type Detector struct {
	p      Params
	late   int64 // Lateness in minutes
	scopes map[scopeKey]*scope
	stats  Stats
	emit   func(Insight)
	// found: the Insights a decoded state held (savedState.Found).
	found []Insight
}

type scopeKey struct{ account, region string }

// scope is one account and region: its own event-time clock.
type scope struct {
	key       scopeKey
	first     int64 // first minute seen
	max       int64 // latest minute seen
	closed    int64 // minutes up to here are judged
	series    map[Key]*series
	pending   map[int64][]*series // minute -> series with counts in it
	watch     []*series           // series judged every minute (active or decreases)
	decreases bool
}

// series is one (type, source, name[, error code]) of a scope. Its memory
// is bounded: 168 hourly counts, a ring of pending minutes, a ring of the
// last hour's minutes.
type series struct {
	key      Key
	hours    [hoursKept]uint32
	hour     int64 // hour of the newest slot; -1 before the first
	peak     float64
	mean     float64
	baseMins int
	ring     []uint32 // pending minute counts, indexed minute % len
	ringMin  []int64
	last     [60]uint16 // closed minute counts, indexed minute % 60
	lastMin  int64      // last closed minute
	decrease bool
	watched  bool

	// state
	over     int   // consecutive unusual minutes
	overSum  int64 // their counts
	under    int   // consecutive usual minutes while active
	active   bool
	down     bool // the active Insight is a drop
	start    int64
	sum      int64 // counts since start
	startAvg float64
	startMin int
	baseAvg  float64
	baseLen  int
}

// NewDetector returns a detector that calls emit for every Insight state
// change, in event-time order within each series.
func NewDetector(p Params, emit func(Insight)) (*Detector, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Detector{p: p, late: int64(p.Lateness / time.Minute), scopes: map[scopeKey]*scope{}, emit: emit}, nil
}

// Stats returns the counts so far.
func (d *Detector) Stats() Stats {
	s := d.stats
	for _, sc := range d.scopes {
		s.Series += len(sc.series)
	}
	return s
}

func minuteOf(t time.Time) int64 { return t.Unix() / 60 }

// Observe adds one observation. Reads and successful reads count nowhere.
func (d *Detector) Observe(o Observation) {
	if !o.Write && o.ErrorCode == "" {
		return
	}
	m := minuteOf(o.Time)
	sk := scopeKey{o.Account, o.Region}
	sc := d.scopes[sk]
	if sc == nil {
		sc = &scope{key: sk, first: m, max: m, closed: m - d.late - 1, series: map[Key]*series{}, pending: map[int64][]*series{}}
		d.scopes[sk] = sc
	}
	if m <= sc.closed {
		d.stats.Late++
		return
	}
	if m < sc.first {
		sc.first = m
	}
	if m > sc.max {
		// judge what fell out of the allowance before the ring slots of
		// those minutes are reused
		sc.max = m
		d.closeThrough(sc, m-d.late-1)
	}
	if o.Write {
		d.count(sc, Key{o.Account, o.Region, CallRate, o.EventSource, o.EventName, ""}, m)
	}
	if o.ErrorCode != "" {
		d.count(sc, Key{o.Account, o.Region, ErrorRate, o.EventSource, o.EventName, o.ErrorCode}, m)
	}
}

func (d *Detector) count(sc *scope, k Key, m int64) {
	s := sc.series[k]
	if s == nil {
		if len(sc.series) >= d.p.MaxSeries {
			d.stats.Dropped++
			return
		}
		s = &series{key: k, hour: -1, lastMin: sc.closed, ring: make([]uint32, d.late+2), ringMin: make([]int64, d.late+2)}
		for i := range s.ringMin {
			s.ringMin[i] = -1
		}
		for _, mt := range d.p.Decreases {
			if (mt.EventSource == "" || mt.EventSource == k.EventSource) && (mt.EventName == "" || mt.EventName == k.EventName) {
				s.decrease = true
			}
		}
		sc.series[k] = s
		if s.decrease {
			d.watch(sc, s)
		}
	}
	d.stats.Observed++
	i := m % int64(len(s.ring))
	if s.ringMin[i] != m {
		s.ringMin[i] = m
		s.ring[i] = 0
		sc.pending[m] = append(sc.pending[m], s)
	}
	s.ring[i]++
}

func (d *Detector) watch(sc *scope, s *series) {
	if !s.watched {
		s.watched = true
		sc.watch = append(sc.watch, s)
	}
}

// Flush judges every pending minute of every scope up to t (exclusive), as
// if a record at t+Lateness had arrived. Call it at the end of a replay so
// that the last minutes are judged; an Insight still active stays open.
func (d *Detector) Flush(t time.Time) {
	end := minuteOf(t) - 1
	keys := make([]scopeKey, 0, len(d.scopes))
	for k := range d.scopes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b scopeKey) int {
		if a.account != b.account {
			return cmpStr(a.account, b.account)
		}
		return cmpStr(a.region, b.region)
	})
	for _, k := range keys {
		d.closeThrough(d.scopes[k], end)
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// closeThrough judges the scope's minutes up to end.
func (d *Detector) closeThrough(sc *scope, end int64) {
	for c := sc.closed + 1; c <= end; c++ {
		list := sc.pending[c]
		delete(sc.pending, c)
		// judge in key order so that emission order is deterministic
		if len(sc.watch) > 0 {
			for _, s := range sc.watch {
				if s.ringMin[c%int64(len(s.ring))] != c {
					list = append(list, s)
				}
			}
		}
		if len(list) > 1 {
			slices.SortFunc(list, func(a, b *series) int { return cmpKey(a.key, b.key) })
		}
		for _, s := range list {
			var n uint32
			if i := c % int64(len(s.ring)); s.ringMin[i] == c {
				n = s.ring[i]
			}
			d.judge(sc, s, c, n)
		}
		sc.closed = c
		if len(sc.watch) > 0 {
			sc.watch = slices.DeleteFunc(sc.watch, func(s *series) bool {
				keep := s.active || s.decrease
				s.watched = keep
				return !keep
			})
		}
	}
	if end > sc.closed {
		sc.closed = end
	}
}

func cmpKey(a, b Key) int {
	for _, p := range [][2]string{{a.InsightType, b.InsightType}, {a.EventSource, b.EventSource}, {a.EventName, b.EventName}, {a.ErrorCode, b.ErrorCode}} {
		if c := cmpStr(p[0], p[1]); c != 0 {
			return c
		}
	}
	return 0
}

// judge closes minute c of s with count n.
func (d *Detector) judge(sc *scope, s *series, c int64, n uint32) {
	s.roll(sc, c)
	gap := c - s.lastMin
	if gap > 1 && !s.active {
		s.over, s.overSum = 0, 0 // minutes without calls are usual
	}
	for x := max(s.lastMin+1, c-59); x < c; x++ {
		s.last[x%60] = 0
	}
	s.lastMin = c
	v := n
	if v > math.MaxUint16 {
		v = math.MaxUint16
	}
	s.last[c%60] = uint16(v)
	s.hours[(c/60)%hoursKept] += n

	warm := time.Duration(c-sc.first)*time.Minute >= d.p.WarmUp
	thr := math.Max(float64(d.p.MinCount), d.p.Ratio*s.peak+d.p.Z*math.Sqrt(s.peak))
	unusual := float64(n) > thr

	if s.active {
		s.sum += int64(n)
		usual := !unusual
		if s.down {
			usual = !d.dropped(s, c)
		}
		if usual {
			s.under++
		} else {
			s.under = 0
		}
		if s.under >= d.p.EndMinutes {
			endMin := c - int64(s.under) + 1
			d.end(s, endMin)
		}
		return
	}
	if unusual {
		s.over++
		s.overSum += int64(n)
	} else {
		s.over, s.overSum = 0, 0
	}
	if warm && s.over >= d.p.StartMinutes {
		d.begin(sc, s, c-int64(s.over)+1, float64(s.overSum)/float64(s.over), s.over, false)
		return
	}
	if warm && s.decrease && s.baseMins >= 24*60 && d.dropped(s, c) {
		w := int64(d.p.DecreaseWindow)
		var got int64
		for x := c - w + 1; x <= c; x++ {
			got += int64(s.last[x%60])
		}
		// the drop starts after the last minute at a usual rate
		start := c - w + 1
		low := d.p.DecreaseRatio * s.hourTypical(c)
		for x := c; x > c-w; x-- {
			if float64(s.last[x%60]) > low {
				start = x + 1
				break
			}
		}
		got = 0
		for x := start; x <= c; x++ {
			got += int64(s.last[x%60])
		}
		d.begin(sc, s, start, float64(got)/float64(c-start+1), int(c-start+1), true)
	}
}

// dropped reports whether the last DecreaseWindow minutes up to c hold far
// fewer calls than the same hour of day usually has.
func (d *Detector) dropped(s *series, c int64) bool {
	if s.baseMins < 24*60 {
		return false
	}
	w := int64(d.p.DecreaseWindow)
	exp := s.hourTypical(c) * float64(w)
	if exp < d.p.DecreaseMinExpected {
		return false
	}
	var got int64
	for x := c - w + 1; x <= c; x++ {
		got += int64(s.last[x%60])
	}
	return float64(got) < d.p.DecreaseRatio*exp
}

func (d *Detector) begin(sc *scope, s *series, start int64, avg float64, mins int, down bool) {
	s.active, s.down = true, down
	s.start = start
	s.sum = 0
	for x := start; x <= s.lastMin; x++ {
		s.sum += int64(s.last[x%60])
	}
	s.under = 0
	s.over, s.overSum = 0, 0
	s.startAvg, s.startMin = avg, mins
	s.baseAvg, s.baseLen = s.mean, s.baseMins
	d.watch(sc, s)
	d.emit(Insight{Key: s.key, State: "Start", Start: time.Unix(start*60, 0).UTC(), Decrease: down,
		BaselineAverage: s.baseAvg, BaselineMinutes: s.baseLen, InsightAverage: avg, InsightMinutes: mins})
}

func (d *Detector) end(s *series, endMin int64) {
	mins := int(endMin - s.start)
	var sum int64
	for x := endMin; x <= s.lastMin; x++ { // the usual minutes are not part of it
		sum += int64(s.last[x%60])
	}
	avg := float64(s.sum-sum) / float64(max(mins, 1))
	d.emit(Insight{Key: s.key, State: "End", Start: time.Unix(s.start*60, 0).UTC(), End: time.Unix(endMin*60, 0).UTC(),
		Decrease: s.down, BaselineAverage: s.baseAvg, BaselineMinutes: s.baseLen, InsightAverage: avg, InsightMinutes: mins})
	s.active, s.down = false, false
	s.under, s.sum = 0, 0
}

// roll moves the hourly ring to the hour of minute c, recomputing the
// baseline once per hour from the 168 complete hours before it.
func (s *series) roll(sc *scope, c int64) {
	h := c / 60
	if h == s.hour {
		return
	}
	if s.hour >= 0 {
		for x := s.hour + 1; x < h && x <= s.hour+hoursKept; x++ {
			s.hours[x%hoursKept] = 0
		}
	}
	s.hour = h
	s.baseline(sc.first/60, h)
	s.hours[h%hoursKept] = 0
}

// baseline computes, over the complete hours [h-168, h) observed by the
// scope, the mean rate per minute and the peak: the largest, over the 24
// hours of the day, of the median across days of that hour's rate.
func (s *series) baseline(firstHour, h int64) {
	lo := max(h-hoursKept, firstHour)
	if s.hour < 0 || lo >= h {
		s.peak, s.mean, s.baseMins = 0, 0, 0
		return
	}
	var total uint64
	var byDay [24][7]uint32
	var nDay [24]int
	for x := lo; x < h; x++ {
		v := s.hours[x%hoursKept]
		total += uint64(v)
		hd := x % 24
		byDay[hd][nDay[hd]] = v
		nDay[hd]++
	}
	peak := 0.0
	for hd := 0; hd < 24; hd++ {
		if nDay[hd] == 0 {
			continue
		}
		vs := byDay[hd][:nDay[hd]]
		slices.Sort(vs)
		med := float64(vs[len(vs)/2])
		if len(vs)%2 == 0 {
			med = (float64(vs[len(vs)/2-1]) + med) / 2
		}
		peak = math.Max(peak, med/60)
	}
	s.peak = peak
	s.baseMins = int(h-lo) * 60
	s.mean = float64(total) / float64(s.baseMins)
}

// hourTypical is the lowest rate per minute of minute c's hour of day over
// the baseline days (0 without any): a drop is judged against the quietest
// day, so that quiet weekends are not drops.
func (s *series) hourTypical(c int64) float64 {
	h := c / 60
	var vs []uint32
	var buf [7]uint32
	vs = buf[:0]
	for day := int64(1); day <= 6; day++ { // hour h-168 shares h's slot
		x := h - 24*day
		if x < 0 || h-x > int64(s.baseMins/60) {
			break
		}
		vs = append(vs, s.hours[x%hoursKept])
	}
	if len(vs) == 0 {
		return 0
	}
	return float64(slices.Min(vs)) / 60
}
