package console

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Event History's filter, carried in the URL so a view can be bookmarked
// and shared: region, attributes (k and v, repeated), a time range preset
// or custom start and end (UTC), and the page's NextToken.
type filter struct {
	Region     string
	Attrs      []attr
	Range      string
	Start, End string
	Token      string
}

type attr struct{ Key, Value string }

// timeRange is a preset of the time range picker.
type timeRange struct {
	Value, Label string
	D            time.Duration
}

// timeRanges returns the presets, in the picker's order.
func timeRanges() []timeRange {
	return []timeRange{
		{"", "All (retention)", 0}, {"1h", "Last hour", time.Hour}, {"3h", "Last 3 hours", 3 * time.Hour},
		{"12h", "Last 12 hours", 12 * time.Hour}, {"1d", "Last day", 24 * time.Hour}, {"7d", "Last 7 days", 7 * 24 * time.Hour},
		{"30d", "Last 30 days", 30 * 24 * time.Hour}, {"custom", "Custom (UTC)", 0},
	}
}

const localTime = "2006-01-02T15:04"

// maxFilterAttrs bounds the attributes of one filter (LookupEvents' own
// bound is 8).
const maxFilterAttrs = 8

func parseFilter(r *http.Request, ss *session) filter {
	q := r.URL.Query()
	f := filter{Region: q.Get("region"), Range: q.Get("range"), Start: q.Get("start"), End: q.Get("end"), Token: q.Get("token")}
	if !audit.ValidRegion(f.Region) {
		f.Region = ss.Principal.Region
	}
	ks, vs := q["k"], q["v"]
	for i := 0; i < len(ks) && i < len(vs) && len(f.Attrs) < maxFilterAttrs; i++ {
		if ks[i] != "" && vs[i] != "" {
			f.Attrs = append(f.Attrs, attr{ks[i], vs[i]})
		}
	}
	return f
}

// values returns f as URL query values (without the token unless withToken).
func (f filter) values(withToken bool) url.Values {
	v := url.Values{"region": {f.Region}}
	for _, a := range f.Attrs {
		v.Add("k", a.Key)
		v.Add("v", a.Value)
	}
	if f.Range != "" {
		v.Set("range", f.Range)
	}
	if f.Range == "custom" {
		v.Set("start", f.Start)
		v.Set("end", f.End)
	}
	if withToken && f.Token != "" {
		v.Set("token", f.Token)
	}
	return v
}

// lookupInput is LookupEvents' input for f (a page of at most max).
func (f filter) lookupInput(now time.Time, max int) (map[string]any, error) {
	in := map[string]any{"MaxResults": max}
	var attrs []map[string]string
	for _, a := range f.Attrs {
		attrs = append(attrs, map[string]string{"AttributeKey": a.Key, "AttributeValue": a.Value})
	}
	if attrs != nil {
		in["LookupAttributes"] = attrs
	}
	switch f.Range {
	case "":
	case "custom":
		for _, s := range []struct{ v, name string }{{f.Start, "StartTime"}, {f.End, "EndTime"}} {
			if s.v == "" {
				continue
			}
			t, err := time.Parse(localTime, s.v)
			if err != nil {
				return nil, fmt.Errorf("%s %q is not a time (YYYY-MM-DDThh:mm, UTC)", s.name, s.v)
			}
			in[s.name] = t.Unix()
		}
	default:
		presets := timeRanges()
		i := slices.IndexFunc(presets, func(t timeRange) bool { return t.Value == f.Range })
		if i < 0 {
			return nil, fmt.Errorf("time range %q is not one of the presets", f.Range)
		}
		in["StartTime"] = now.Add(-presets[i].D).Unix()
	}
	if f.Token != "" {
		in["NextToken"] = f.Token
	}
	return in, nil
}

type lookupOutput struct {
	Events []struct {
		EventID     string  `json:"EventId"`
		EventName   string  `json:"EventName"`
		ReadOnly    string  `json:"ReadOnly"`
		AccessKeyID string  `json:"AccessKeyId"`
		EventTime   float64 `json:"EventTime"`
		EventSource string  `json:"EventSource"`
		Username    string  `json:"Username"`
		Resources   []struct {
			ResourceType, ResourceName string
		} `json:"Resources"`
		CloudTrailEvent string `json:"CloudTrailEvent"`
	} `json:"Events"`
	NextToken string `json:"NextToken"`
}

// row is one event as the table and the CSV show it.
type row struct {
	ID, Time, User, Name, Source, ResourceType, ResourceName, AccessKey, Region, ErrorCode, SourceIP, ReadOnly string
	Raw                                                                                                        string
	// Link opens the record (with the filter, for the way back).
	Link string
}

func rows(out *lookupOutput) []row {
	rs := make([]row, 0, len(out.Events))
	for _, e := range out.Events {
		var rec struct {
			AWSRegion       string `json:"awsRegion"`
			SourceIPAddress string `json:"sourceIPAddress"`
			ErrorCode       string `json:"errorCode"`
		}
		json.Unmarshal([]byte(e.CloudTrailEvent), &rec)
		var types, names []string
		for _, r := range e.Resources {
			types, names = append(types, r.ResourceType), append(names, r.ResourceName)
		}
		rs = append(rs, row{ID: e.EventID, Time: epochText(e.EventTime),
			User: e.Username, Name: e.EventName, Source: e.EventSource, ResourceType: strings.Join(types, ", "),
			ResourceName: strings.Join(names, ", "), AccessKey: e.AccessKeyID, Region: rec.AWSRegion, ErrorCode: rec.ErrorCode,
			SourceIP: rec.SourceIPAddress, ReadOnly: e.ReadOnly, Raw: e.CloudTrailEvent})
	}
	return rs
}

type eventsData struct {
	Filter   filter
	AttrKeys []audit.AttributeKey
	Ranges   any
	Rows     []row
	Next     string // URL of the next page, "" on the last
	First    string // URL of the first page, when not on it
	// DownloadCSV and DownloadJSON are the downloads' URLs.
	DownloadCSV, DownloadJSON string
	BlankAttr                 bool
}

func (c *Console) events(w http.ResponseWriter, r *http.Request, ss *session) {
	f := parseFilter(r, ss)
	p := ss.Principal
	p.Region = f.Region
	d := eventsData{Filter: f, AttrKeys: audit.AttributeKeys, Ranges: timeRanges(),
		DownloadCSV:  Prefix + "events/download?format=csv&" + f.values(false).Encode(),
		DownloadJSON: Prefix + "events/download?format=json&" + f.values(false).Encode()}
	pg := page{Title: "Event history", Nav: "events", Session: ss, Region: f.Region, Data: &d}
	in, err := f.lookupInput(c.cfg.Now(), 50)
	status := http.StatusOK
	if err == nil {
		var out lookupOutput
		if err = c.call(r, p, "LookupEvents", in, &out); err == nil {
			d.Rows = rows(&out)
			for i := range d.Rows {
				v := f.values(true)
				v.Set("id", d.Rows[i].ID)
				d.Rows[i].Link = Prefix + "event?" + v.Encode()
			}
			if out.NextToken != "" {
				nf := f
				nf.Token = out.NextToken
				d.Next = Prefix + "events?" + nf.values(true).Encode()
			}
			if f.Token != "" {
				d.First = Prefix + "events?" + f.values(false).Encode()
			}
		}
		if err != nil {
			pg.Error, status = errorText(err), statusOf(err)
		}
	} else {
		pg.Error, status = err.Error(), http.StatusBadRequest
	}
	c.render(w, status, "events", pg)
}

func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusInternalServerError
}

type eventData struct {
	ID, Region, JSON, Back string
}

// event shows one record, looked up by its ID in the page's region.
func (c *Console) event(w http.ResponseWriter, r *http.Request, ss *session) {
	f := parseFilter(r, ss)
	id := r.URL.Query().Get("id")
	p := ss.Principal
	p.Region = f.Region
	pg := page{Title: "Event", Nav: "events", Session: ss, Region: f.Region}
	d := eventData{ID: id, Region: f.Region, Back: Prefix + "events?" + f.values(true).Encode()}
	var out lookupOutput
	err := c.call(r, p, "LookupEvents", map[string]any{"LookupAttributes": []map[string]string{{"AttributeKey": "EventId", "AttributeValue": id}}}, &out)
	switch {
	case err != nil:
		pg.Error = errorText(err)
		c.render(w, statusOf(err), "event", pg)
		return
	case len(out.Events) == 0:
		pg.Error = "No event with ID " + id + " in " + f.Region + "."
		c.render(w, http.StatusNotFound, "event", pg)
		return
	}
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(out.Events[0].CloudTrailEvent), "", "  ") != nil {
		buf.Reset()
		buf.WriteString(out.Events[0].CloudTrailEvent)
	}
	d.JSON = buf.String()
	pg.Data = d
	c.render(w, http.StatusOK, "event", pg)
}

// csvHeader returns the header of the CSV download, the columns of AWS's
// Event History download.
func csvHeader() []string {
	return []string{"Event ID", "Event time", "User name", "Event name", "Event source", "Resource type", "Resource name",
		"AWS access key", "AWS region", "Error code", "Source IP address", "Read-only"}
}

// download streams every event the filter matches, all pages, as CSV or
// as JSON ({"Records": [...]}, each record LookupEvents' CloudTrailEvent).
// An API error after the first page aborts the response, so a partial
// download never looks complete.
func (c *Console) download(w http.ResponseWriter, r *http.Request, ss *session) {
	f := parseFilter(r, ss)
	f.Token = ""
	p := ss.Principal
	p.Region = f.Region
	format := r.URL.Query().Get("format")
	if format != "csv" && format != "json" {
		c.render(w, http.StatusBadRequest, "error", page{Title: "Download", Session: ss, Region: f.Region, Error: "format must be csv or json."})
		return
	}
	if _, err := f.lookupInput(c.cfg.Now(), 50); err != nil {
		c.render(w, http.StatusBadRequest, "error", page{Title: "Download", Session: ss, Region: f.Region, Error: err.Error()})
		return
	}
	started := false
	var cw *csv.Writer
	first := true
	for {
		in, err := f.lookupInput(c.cfg.Now(), 50)
		var out lookupOutput
		if err == nil {
			err = c.callRetrying(r, p, "LookupEvents", in, &out)
		}
		if err != nil {
			if !started {
				c.render(w, statusOf(err), "error", page{Title: "Download", Session: ss, Region: f.Region, Error: errorText(err)})
				return
			}
			c.cfg.Logger.Warn("console: a download ended early", "err", err)
			panic(http.ErrAbortHandler)
		}
		if !started {
			started = true
			name := "event_history." + format
			w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
			w.Header().Set("Cache-Control", "no-store")
			if format == "csv" {
				w.Header().Set("Content-Type", "text/csv; charset=utf-8")
				cw = csv.NewWriter(w)
				cw.Write(csvHeader())
			} else {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"Records":[`))
			}
		}
		for _, e := range rows(&out) {
			if cw != nil {
				cw.Write(csvCells([]string{e.ID, e.Time, e.User, e.Name, e.Source, e.ResourceType, e.ResourceName, e.AccessKey, e.Region,
					e.ErrorCode, e.SourceIP, e.ReadOnly}))
				continue
			}
			if !first {
				w.Write([]byte(","))
			}
			first = false
			w.Write([]byte(e.Raw))
		}
		if cw != nil {
			cw.Flush()
		}
		if out.NextToken == "" {
			break
		}
		f.Token = out.NextToken
	}
	if cw == nil {
		w.Write([]byte("]}\n"))
	}
}

// csvCells makes cells safe to open in a spreadsheet, in place: a cell
// that starts with =, +, -, @, a tab or a CR and is not a number gets a
// leading ' so it is shown as text, not run as a formula (record content
// is whatever a caller, an import or an ingestion channel put there).
func csvCells(cells []string) []string {
	for i, s := range cells {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				cells[i] = "'" + s
			}
		}
	}
	return cells
}

// callRetrying is call, retried with backoff while the API throttles the
// account (a long download competes with the account's other calls).
func (c *Console) callRetrying(r *http.Request, p audit.Principal, op string, in, out any) error {
	for attempt := 0; ; attempt++ {
		err := c.call(r, p, op, in, out)
		var ae *apiError
		if attempt >= 6 || !errors.As(err, &ae) || ae.Code != "ThrottlingException" {
			return err
		}
		select {
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}
