package insights

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// t0 is a Monday midnight; synthetic traffic starts there.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

const (
	acct = "111111111111"
	reg  = "us-east-1"
)

// rateFunc gives the expected calls per minute at minute m since t0.
type rateFunc func(m int) float64

// stream is one synthetic series of calls.
type stream struct {
	source, name, errorCode string
	write                   bool
	rate                    rateFunc
	// dispersion > 0 draws each minute's rate from a gamma distribution
	// with this coefficient of variation (bursty, non-Poisson traffic).
	dispersion float64
}

func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// gamma draws from Gamma(shape k, scale 1) (Marsaglia-Tsang, k >= 1).
func gamma(r *rand.Rand, k float64) float64 {
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		if math.Log(r.Float64()) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// generate returns the observations of streams over minutes [from, to),
// in time order.
func generate(seed uint64, from, to int, streams ...stream) []Observation {
	r := rand.New(rand.NewPCG(seed, 7))
	var out []Observation
	for m := from; m < to; m++ {
		for _, s := range streams {
			lambda := s.rate(m)
			if s.dispersion > 0 && lambda > 0 {
				k := 1 / (s.dispersion * s.dispersion)
				lambda *= gamma(r, math.Max(k, 1)) / math.Max(k, 1)
			}
			n := poisson(r, lambda)
			for i := 0; i < n; i++ {
				out = append(out, Observation{
					Time:    t0.Add(time.Duration(m)*time.Minute + time.Duration(i*59/max(n, 1))*time.Second),
					Account: acct, Region: reg, EventSource: s.source, EventName: s.name,
					Write: s.write, ErrorCode: s.errorCode,
				})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Observation) int { return a.Time.Compare(b.Time) })
	return out
}

func run(t testing.TB, p Params, obs []Observation, flushAt time.Time) ([]Insight, Stats) {
	t.Helper()
	var got []Insight
	d, err := NewDetector(p, func(in Insight) { got = append(got, in) })
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		d.Observe(o)
	}
	d.Flush(flushAt)
	return got, d.Stats()
}

func steady(r float64) rateFunc { return func(int) float64 { return r } }

const day = 24 * 60

// TestCallRateBurst is the seed's first example: 20 CreateBucket calls a
// minute, then 100 a minute for 15 minutes.
func TestCallRateBurst(t *testing.T) {
	burst := 8*day + 10*60 // day 9, 10:00
	rate := func(m int) float64 {
		if m >= burst && m < burst+15 {
			return 100
		}
		return 20
	}
	obs := generate(1, 0, burst+120,
		stream{source: "s3.amazonaws.com", name: "CreateBucket", write: true, rate: rate},
		stream{source: "s3.amazonaws.com", name: "ListBuckets", rate: steady(5)}, // reads count nowhere
	)
	got, st := run(t, DefaultParams(), obs, t0.Add(time.Duration(burst+120)*time.Minute))
	if len(got) != 2 {
		t.Fatalf("got %d Insights, want a Start and an End: %+v", len(got), got)
	}
	s, e := got[0], got[1]
	bt := t0.Add(time.Duration(burst) * time.Minute)
	if s.State != "Start" || s.InsightType != CallRate || s.EventName != "CreateBucket" || s.EventSource != "s3.amazonaws.com" {
		t.Fatalf("first = %+v", s)
	}
	if s.Start.Before(bt) || s.Start.After(bt.Add(3*time.Minute)) {
		t.Errorf("Start at %v, burst at %v", s.Start, bt)
	}
	if e.State != "End" || !e.Start.Equal(s.Start) {
		t.Fatalf("second = %+v", e)
	}
	if be := bt.Add(15 * time.Minute); e.End.Before(be.Add(-time.Minute)) || e.End.After(be.Add(2*time.Minute)) {
		t.Errorf("End at %v, burst ended at %v", e.End, be)
	}
	if math.Abs(s.BaselineAverage-20) > 1 || s.BaselineMinutes != 7*day {
		t.Errorf("baseline %.2f over %d min, want ~20 over %d", s.BaselineAverage, s.BaselineMinutes, 7*day)
	}
	if e.InsightAverage < 80 || e.InsightAverage > 120 || e.InsightMinutes < 14 || e.InsightMinutes > 16 {
		t.Errorf("insight average %.1f over %d min, want ~100 over 15", e.InsightAverage, e.InsightMinutes)
	}
	if st.Late != 0 || st.Dropped != 0 || st.Series != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestErrorRateBurst is the seed's second example: a sudden increase of
// AccessDenied errors.
func TestErrorRateBurst(t *testing.T) {
	burst := 7*day + 3*60
	denied := func(m int) float64 {
		if m >= burst && m < burst+20 {
			return 40
		}
		return 0.5
	}
	obs := generate(2, 0, burst+90,
		stream{source: "iam.amazonaws.com", name: "GetUser", errorCode: "AccessDenied", rate: denied},
		stream{source: "iam.amazonaws.com", name: "GetUser", rate: steady(30)},
		stream{source: "ec2.amazonaws.com", name: "RunInstances", write: true, rate: steady(2)},
	)
	got, _ := run(t, DefaultParams(), obs, t0.Add(time.Duration(burst+90)*time.Minute))
	if len(got) != 2 {
		t.Fatalf("got %d Insights: %+v", len(got), got)
	}
	s := got[0]
	if s.InsightType != ErrorRate || s.ErrorCode != "AccessDenied" || s.EventName != "GetUser" || s.State != "Start" {
		t.Fatalf("start = %+v", s)
	}
	if d := s.Start.Sub(t0.Add(time.Duration(burst) * time.Minute)); d < 0 || d > 3*time.Minute {
		t.Errorf("started %v after the burst", d)
	}
	if got[1].State != "End" {
		t.Errorf("end = %+v", got[1])
	}
}

// TestDecrease is the seed's third example: calls that stop, on a series
// configured for decreases.
func TestDecrease(t *testing.T) {
	stop := 8*day + 14*60
	rate := func(m int) float64 {
		if m >= stop && m < stop+120 {
			return 0
		}
		return 10 + 8*math.Sin(2*math.Pi*float64(m%day)/day)
	}
	streams := []stream{
		{source: "s3.amazonaws.com", name: "PutObject", write: true, rate: rate},
		{source: "sts.amazonaws.com", name: "AssumeRole", write: true, rate: steady(3)}, // keeps the clock going
	}
	obs := generate(3, 0, stop+240, streams...)
	end := t0.Add(time.Duration(stop+240) * time.Minute)
	p := DefaultParams()
	if got, _ := run(t, p, obs, end); len(got) != 0 {
		t.Fatalf("without decreases configured: %+v", got)
	}
	p.Decreases = []Match{{EventSource: "s3.amazonaws.com", EventName: "PutObject"}}
	got, _ := run(t, p, obs, end)
	if len(got) != 2 {
		t.Fatalf("got %d Insights: %+v", len(got), got)
	}
	s, e := got[0], got[1]
	st := t0.Add(time.Duration(stop) * time.Minute)
	if !s.Decrease || s.State != "Start" || s.EventName != "PutObject" || s.Start.Before(st) || s.Start.After(st.Add(30*time.Minute)) {
		t.Errorf("start = %+v (calls stopped at %v)", s, st)
	}
	if !e.Decrease || e.State != "End" || e.End.Before(st.Add(110*time.Minute)) || e.End.After(st.Add(150*time.Minute)) {
		t.Errorf("end = %+v (calls resumed at %v)", e, st.Add(120*time.Minute))
	}
}

// weekStreams is a week of realistic traffic: steady, low, daily-seasonal
// with business hours, bursty (overdispersed) and steady errors.
func weekStreams() []stream {
	seasonal := func(base, amp float64) rateFunc {
		return func(m int) float64 {
			h := float64(m%day) / 60
			v := base + amp*math.Exp(-(h-14)*(h-14)/8) // a business-hours bump peaking at 14:00
			if (m/day)%7 >= 5 {                        // weekends are quieter
				v *= 0.4
			}
			return v
		}
	}
	return []stream{
		{source: "s3.amazonaws.com", name: "CreateBucket", write: true, rate: steady(20)},
		{source: "s3.amazonaws.com", name: "PutBucketPolicy", write: true, rate: steady(0.3)},
		{source: "ec2.amazonaws.com", name: "RunInstances", write: true, rate: seasonal(2, 40)},
		{source: "ec2.amazonaws.com", name: "CreateTags", write: true, rate: seasonal(5, 25), dispersion: 0.3},
		{source: "iam.amazonaws.com", name: "PassRole", write: true, rate: steady(8), dispersion: 0.5},
		{source: "sts.amazonaws.com", name: "AssumeRole", write: true, rate: seasonal(10, 60)},
		{source: "iam.amazonaws.com", name: "GetUser", errorCode: "AccessDenied", rate: seasonal(0.5, 3)},
		{source: "ec2.amazonaws.com", name: "DescribeInstances", errorCode: "Client.RequestLimitExceeded", rate: steady(2), dispersion: 0.5},
	}
}

// TestWeekFalsePositives measures Insights on two weeks of normal traffic
// (the first week is the baseline) for several seeds: at most one per week.
func TestWeekFalsePositives(t *testing.T) {
	if testing.Short() {
		t.Skip("generates several weeks of traffic")
	}
	p := DefaultParams()
	p.Decreases = []Match{{EventSource: "ec2.amazonaws.com"}, {EventSource: "s3.amazonaws.com"}}
	total, weeks := 0, 0
	seeds := uint64(3)
	if raceEnabled {
		seeds = 1 // the race detector makes each seed take ~25 s
	}
	for seed := uint64(10); seed < 10+seeds; seed++ {
		obs := generate(seed, 0, 14*day, weekStreams()...)
		got, st := run(t, p, obs, t0.Add(14*day*time.Minute))
		n := 0
		for _, in := range got {
			if in.State == "Start" {
				n++
				t.Logf("seed %d: false positive %s %s %s %s at %v (baseline %.2f, insight %.2f, decrease %v)",
					seed, in.InsightType, in.EventSource, in.EventName, in.ErrorCode, in.Start, in.BaselineAverage, in.InsightAverage, in.Decrease)
			}
		}
		t.Logf("seed %d: %d observations, %d series, %d Insights", seed, st.Observed, st.Series, n)
		total += n
		weeks++
	}
	t.Logf("false positives: %d over %d weeks of %d series (steady, low, seasonal, bursty, errors)", total, weeks, len(weekStreams()))
	if total > weeks {
		t.Errorf("%d false positives over %d weeks, want at most one a week", total, weeks)
	}
}

// TestDeterministic feeds the same records in time order and shuffled
// within the lateness allowance: the Insights are the same.
func TestDeterministic(t *testing.T) {
	burst := 2*day + 600
	rate := func(m int) float64 {
		if m >= burst && m < burst+10 {
			return 80
		}
		return 10
	}
	obs := generate(4, 0, burst+60, stream{source: "kms.amazonaws.com", name: "CreateGrant", write: true, rate: rate},
		stream{source: "kms.amazonaws.com", name: "Decrypt", errorCode: "AccessDenied", rate: rate})
	end := t0.Add(time.Duration(burst+60) * time.Minute)
	want, _ := run(t, DefaultParams(), obs, end)
	if len(want) != 4 {
		t.Fatalf("got %d Insights, want 4: %+v", len(want), want)
	}
	// Shuffle: each record may arrive up to 10 minutes after later ones.
	r := rand.New(rand.NewPCG(9, 9))
	type arr struct {
		at time.Time
		o  Observation
	}
	var as []arr
	for _, o := range obs {
		as = append(as, arr{o.Time.Add(time.Duration(r.IntN(600)) * time.Second), o})
	}
	slices.SortStableFunc(as, func(a, b arr) int { return a.at.Compare(b.at) })
	shuffled := make([]Observation, len(as))
	for i, a := range as {
		shuffled[i] = a.o
	}
	got, st := run(t, DefaultParams(), shuffled, end)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("shuffled:\n%+v\nin order:\n%+v", got, want)
	}
	if st.Late != 0 {
		t.Errorf("%d late with disorder inside the allowance", st.Late)
	}
}

func TestLateAndBounded(t *testing.T) {
	p := DefaultParams()
	p.MaxSeries = 2
	d, _ := NewDetector(p, func(Insight) {})
	o := Observation{Time: t0.Add(time.Hour), Account: acct, Region: reg, EventSource: "a", EventName: "A", Write: true}
	d.Observe(o)
	o.Time = t0.Add(time.Hour + p.Lateness + 2*time.Minute)
	d.Observe(o)
	o.Time = t0.Add(time.Hour) // its minute is judged now
	d.Observe(o)
	for _, n := range []string{"B", "C", "D"} {
		o.EventName = n
		o.Time = t0.Add(2 * time.Hour)
		d.Observe(o)
	}
	o.Account = "222222222222" // another scope has its own clock and bound
	o.Time = t0
	d.Observe(o)
	st := d.Stats()
	if st.Late != 1 || st.Dropped != 2 || st.Series != 3 || st.Observed != 4 {
		t.Errorf("stats %+v, want 1 late, 2 dropped, 3 series, 4 observed", st)
	}
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Params){
		func(p *Params) { p.Ratio = 0.5 },
		func(p *Params) { p.Ratio = math.NaN() },
		func(p *Params) { p.Z = -1 },
		func(p *Params) { p.MinCount = 0 },
		func(p *Params) { p.StartMinutes = 0 },
		func(p *Params) { p.EndMinutes = 61 },
		func(p *Params) { p.DecreaseRatio = 1 },
		func(p *Params) { p.DecreaseWindow = 0 },
		func(p *Params) { p.Lateness = -time.Second },
		func(p *Params) { p.MaxSeries = 0 },
	}
	for i, f := range bad {
		p := DefaultParams()
		f(&p)
		if p.Validate() == nil {
			t.Errorf("case %d: %+v accepted", i, p)
		}
	}
}
