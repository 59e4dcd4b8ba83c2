package console

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Bounds of the Insights pages: the Insights records read for the list,
// and the events counted for one chart (each page one LookupEvents call).
const (
	maxInsightPages = 20
	maxChartPages   = 100
	chartMargin     = 30 * time.Minute // shown before the start and after the end
)

// insight is one Insight: its Start record and, once over, its End.
type insight struct {
	SharedID, StartID                  string
	Type, Source, Name, ErrorCode      string
	Start, End                         time.Time
	BaselineAverage, InsightAverage    float64
	BaselineMinutes, InsightMinutes    int
	StartText, EndText, Chart, History string
}

type insightRecord struct {
	EventID        string `json:"eventID"`
	EventTime      string `json:"eventTime"`
	SharedEventID  string `json:"sharedEventID"`
	InsightDetails struct {
		State          string `json:"state"`
		EventSource    string `json:"eventSource"`
		EventName      string `json:"eventName"`
		InsightType    string `json:"insightType"`
		ErrorCode      string `json:"errorCode"`
		InsightContext struct {
			Statistics struct {
				Baseline         struct{ Average float64 } `json:"baseline"`
				Insight          struct{ Average float64 } `json:"insight"`
				InsightDuration  int                       `json:"insightDuration"`
				BaselineDuration int                       `json:"baselineDuration"`
			} `json:"statistics"`
		} `json:"insightContext"`
	} `json:"insightDetails"`
}

// lookupInsights reads the Insights records of attrs (insight-valid
// attributes), newest first, at most maxInsightPages pages, and pairs
// each Start with its End. truncated reports more records than were read.
func (c *Console) lookupInsights(r *http.Request, p audit.Principal, attrs []attr) (ins []*insight, truncated bool, err error) {
	f := filter{Region: p.Region, Attrs: attrs}
	byShared := map[string]*insight{}
	for page := 0; ; page++ {
		if page == maxInsightPages {
			return ins, true, nil
		}
		in, _ := f.lookupInput(c.cfg.Now(), 50)
		in["EventCategory"] = "insight"
		var out lookupOutput
		if err := c.call(r, p, "LookupEvents", in, &out); err != nil {
			return nil, false, err
		}
		for _, e := range out.Events {
			var rec insightRecord
			if json.Unmarshal([]byte(e.CloudTrailEvent), &rec) != nil || rec.SharedEventID == "" {
				continue
			}
			t, _ := time.Parse(audit.TimeFormat, rec.EventTime)
			d := rec.InsightDetails
			st := d.InsightContext.Statistics
			it := byShared[rec.SharedEventID]
			if it == nil {
				it = &insight{SharedID: rec.SharedEventID, Type: d.InsightType, Source: d.EventSource, Name: d.EventName, ErrorCode: d.ErrorCode,
					BaselineAverage: st.Baseline.Average, BaselineMinutes: st.BaselineDuration}
				byShared[rec.SharedEventID] = it
				ins = append(ins, it)
			}
			switch d.State {
			case "Start":
				it.Start, it.StartID = t, rec.EventID
				if it.End.IsZero() {
					it.InsightAverage, it.InsightMinutes = st.Insight.Average, st.InsightDuration
				}
			case "End":
				it.End = t
				it.InsightAverage, it.InsightMinutes = st.Insight.Average, st.InsightDuration
			}
		}
		if out.NextToken == "" {
			break
		}
		f.Token = out.NextToken
	}
	for _, it := range ins {
		it.StartText, it.EndText = fmtTime(it.Start), fmtTime(it.End)
		if it.End.IsZero() && !it.Start.IsZero() {
			it.EndText = "ongoing"
		}
		v := url.Values{"region": {p.Region}, "id": {it.SharedID}, "name": {it.Name}}
		it.Chart = Prefix + "insight?" + v.Encode()
	}
	return ins, false, nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

type insightsData struct {
	Insights  []*insight
	Truncated bool
}

// insights lists the region's Insights.
func (c *Console) insights(w http.ResponseWriter, r *http.Request, ss *session) {
	region := regionOf(r, ss)
	p := ss.Principal
	p.Region = region
	pg := page{Title: "Insights", Nav: "insights", Session: ss, Region: region}
	ins, truncated, err := c.lookupInsights(r, p, nil)
	if err != nil {
		pg.Error = errorText(err)
		c.render(w, statusOf(err), "insights", pg)
		return
	}
	pg.Data = insightsData{Insights: ins, Truncated: truncated}
	c.render(w, http.StatusOK, "insights", pg)
}

// chart is an Insight's SVG chart: the per-minute rate of its events over
// the window against the baseline average, the Insight shaded.
type chart struct {
	Width, Height            int
	Left, Top, Right, Bottom int
	PlotRight, PlotBottom    int    // the plot's right and bottom edges
	Points                   string // polyline of the rate
	BaselineY                float64
	ShadeX, ShadeW           float64
	MaxY                     int
	XLabels                  []chartLabel
	YLabels                  []chartLabel
	Partial                  bool
	Minutes, Events          int
}

type chartLabel struct {
	X, Y float64
	Text string
}

type insightData struct {
	Insight *insight
	Chart   *chart
}

// insight shows one Insight and its chart, counted from Event History
// (LookupEvents by event name and source over the window, every page up
// to maxChartPages; an error-rate Insight counts the events with its
// error code).
func (c *Console) insight(w http.ResponseWriter, r *http.Request, ss *session) {
	region := regionOf(r, ss)
	p := ss.Principal
	p.Region = region
	q := r.URL.Query()
	pg := page{Title: "Insight", Nav: "insights", Session: ss, Region: region}
	var attrs []attr
	if n := q.Get("name"); n != "" {
		attrs = []attr{{"EventName", n}}
	}
	ins, _, err := c.lookupInsights(r, p, attrs)
	if err != nil {
		pg.Error = errorText(err)
		c.render(w, statusOf(err), "insight", pg)
		return
	}
	i := slices.IndexFunc(ins, func(it *insight) bool { return it.SharedID == q.Get("id") })
	if i < 0 || ins[i].Start.IsZero() {
		pg.Error = "No such Insight in " + region + "."
		c.render(w, http.StatusNotFound, "insight", pg)
		return
	}
	it := ins[i]
	from := it.Start.Add(-chartMargin).Truncate(time.Minute)
	end := it.End
	if end.IsZero() {
		end = c.cfg.Now()
	}
	to := end.Add(chartMargin).Truncate(time.Minute)
	f := filter{Region: region, Range: "custom", Start: from.Format(localTime), End: to.Format(localTime),
		Attrs: []attr{{"EventName", it.Name}, {"EventSource", it.Source}}}
	it.History = Prefix + "events?" + f.values(false).Encode()
	counts := make([]int, int(to.Sub(from)/time.Minute)+1)
	partial, events := false, 0
	for page := 0; ; page++ {
		if page == maxChartPages {
			partial = true
			break
		}
		in, _ := f.lookupInput(c.cfg.Now(), 50)
		var out lookupOutput
		if err := c.call(r, p, "LookupEvents", in, &out); err != nil {
			pg.Error = errorText(err)
			c.render(w, statusOf(err), "insight", pg)
			return
		}
		for _, e := range out.Events {
			if it.ErrorCode != "" {
				var rec struct {
					ErrorCode string `json:"errorCode"`
				}
				if json.Unmarshal([]byte(e.CloudTrailEvent), &rec) != nil || rec.ErrorCode != it.ErrorCode {
					continue
				}
			}
			sec, _ := math.Modf(e.EventTime)
			m := int(time.Unix(int64(sec), 0).Sub(from) / time.Minute)
			if m >= 0 && m < len(counts) {
				counts[m]++
				events++
			}
		}
		if out.NextToken == "" {
			break
		}
		f.Token = out.NextToken
	}
	pg.Data = insightData{Insight: it, Chart: drawChart(counts, from, it, partial, events)}
	c.render(w, http.StatusOK, "insight", pg)
}

// drawChart lays out the chart of counts (one per minute from from).
func drawChart(counts []int, from time.Time, it *insight, partial bool, events int) *chart {
	ch := &chart{Width: 900, Height: 300, Left: 50, Top: 16, Right: 16, Bottom: 40, Partial: partial, Minutes: len(counts), Events: events}
	ch.PlotRight, ch.PlotBottom = ch.Width-ch.Right, ch.Height-ch.Bottom
	maxY := int(math.Ceil(it.BaselineAverage))
	for _, n := range counts {
		maxY = max(maxY, n)
	}
	maxY = max(maxY, 1)
	ch.MaxY = maxY
	pw, ph := float64(ch.Width-ch.Left-ch.Right), float64(ch.Height-ch.Top-ch.Bottom)
	x := func(m float64) float64 { return float64(ch.Left) + pw*m/float64(max(len(counts)-1, 1)) }
	y := func(v float64) float64 { return float64(ch.Top) + ph*(1-v/float64(maxY)) }
	var pts []byte
	for m, n := range counts {
		pts = fmt.Appendf(pts, "%.1f,%.1f ", x(float64(m)), y(float64(n)))
	}
	ch.Points = string(pts)
	ch.BaselineY = y(it.BaselineAverage)
	s := it.Start.Sub(from).Minutes()
	e := float64(len(counts) - 1)
	if !it.End.IsZero() {
		e = it.End.Sub(from).Minutes()
	}
	ch.ShadeX, ch.ShadeW = x(s), max(x(e)-x(s), 1)
	for i := 0; i <= 4; i++ {
		v := float64(maxY) * float64(i) / 4
		ch.YLabels = append(ch.YLabels, chartLabel{X: float64(ch.Left - 6), Y: y(v) + 4, Text: fmt.Sprintf("%.3g", v)})
	}
	for i := 0; i <= 4; i++ {
		m := float64(len(counts)-1) * float64(i) / 4
		ch.XLabels = append(ch.XLabels, chartLabel{X: x(m), Y: float64(ch.Height - ch.Bottom + 18),
			Text: from.Add(time.Duration(m) * time.Minute).UTC().Format("15:04")})
	}
	return ch
}

// regionOf is the page's region: the URL's, else the session's.
func regionOf(r *http.Request, ss *session) string {
	if region := r.URL.Query().Get("region"); audit.ValidRegion(region) {
		return region
	}
	return ss.Principal.Region
}

// formRegion is a form's region: its region field, else the session's.
func formRegion(r *http.Request, ss *session) string {
	if region := r.PostFormValue("region"); audit.ValidRegion(region) {
		return region
	}
	return ss.Principal.Region
}
