package console

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

type storeRow struct {
	ID, Name, ARN, Status, Created string
	Retention                      int
	Selected, Protected            bool
}

type lakeData struct {
	Stores    []storeRow
	Store     string // the selected store's ID
	Samples   []sample
	Statement string
	History   []queryRow
}

type sample struct{ Label, SQL string }

type queryRow struct {
	ID, Status, Created, Link string
}

// maxStatement bounds the query editor's statement (StartQuery's own
// bound is the API's 1 MiB body).
const maxStatement = 64 << 10

// lake lists the account's event data stores, the query editor with
// sample queries for the selected store, and that store's query history
// (ListEventDataStores, ListQueries).
func (c *Console) lake(w http.ResponseWriter, r *http.Request, ss *session) {
	c.lakePage(w, r, ss, regionOf(r, ss), r.URL.Query().Get("store"), "", "")
}

func (c *Console) lakePage(w http.ResponseWriter, r *http.Request, ss *session, region, store, statement, msg string) {
	p := ss.Principal
	p.Region = region
	pg := page{Title: "Lake", Nav: "lake", Session: ss, Region: region, Error: msg}
	var out struct {
		EventDataStores []struct {
			EventDataStoreArn, Name, Status string
			RetentionPeriod                 int
			CreatedTimestamp                float64
			TerminationProtectionEnabled    bool
		}
	}
	status := http.StatusOK
	if msg != "" {
		status = http.StatusBadRequest
	}
	if err := c.call(r, p, "ListEventDataStores", map[string]any{}, &out); err != nil {
		pg.Error = errorText(err)
		c.render(w, statusOf(err), "lake", pg)
		return
	}
	d := lakeData{Statement: statement}
	for _, s := range out.EventDataStores {
		id := s.EventDataStoreArn[strings.LastIndex(s.EventDataStoreArn, "/")+1:]
		d.Stores = append(d.Stores, storeRow{ID: id, Name: s.Name, ARN: s.EventDataStoreArn, Status: s.Status,
			Retention: s.RetentionPeriod, Created: epochText(s.CreatedTimestamp), Protected: s.TerminationProtectionEnabled})
	}
	if i := slices.IndexFunc(d.Stores, func(s storeRow) bool { return s.ID == store }); i >= 0 {
		d.Store = store
		d.Stores[i].Selected = true
	} else if len(d.Stores) > 0 {
		d.Store = d.Stores[0].ID
		d.Stores[0].Selected = true
	}
	if d.Store != "" {
		t := d.Store
		d.Samples = []sample{
			{"Latest events", "SELECT eventTime, eventName, eventSource, userIdentity.arn, sourceIPAddress FROM " + t + " ORDER BY eventTime DESC LIMIT 50"},
			{"Calls by event source", "SELECT eventSource, count(*) AS calls FROM " + t + " GROUP BY eventSource ORDER BY calls DESC"},
			{"Errors by user", "SELECT userIdentity.arn, errorCode, count(*) AS n FROM " + t + " WHERE errorCode IS NOT NULL GROUP BY userIdentity.arn, errorCode ORDER BY n DESC LIMIT 50"},
			{"Console sign-ins", "SELECT eventTime, userIdentity.arn, sourceIPAddress, responseElements FROM " + t + " WHERE eventName = 'ConsoleLogin' ORDER BY eventTime DESC"},
		}
		if d.Statement == "" {
			d.Statement = d.Samples[0].SQL
		}
		var qs struct {
			Queries []struct {
				QueryId, QueryStatus string
				CreationTime         float64
			}
		}
		if err := c.call(r, p, "ListQueries", map[string]any{"EventDataStore": d.Store, "MaxResults": 50}, &qs); err == nil {
			for _, q := range qs.Queries {
				d.History = append(d.History, queryRow{ID: q.QueryId, Status: q.QueryStatus, Created: epochText(q.CreationTime),
					Link: Prefix + "lake/query?" + url.Values{"region": {region}, "id": {q.QueryId}}.Encode()})
			}
			slices.SortStableFunc(d.History, func(a, b queryRow) int { return strings.Compare(b.Created, a.Created) })
		}
	}
	pg.Data = d
	c.render(w, status, "lake", pg)
}

// lakeRun starts a query (StartQuery) and shows it.
func (c *Console) lakeRun(w http.ResponseWriter, r *http.Request, ss *session) {
	region := formRegion(r, ss)
	p := ss.Principal
	p.Region = region
	stmt := r.PostFormValue("statement")
	if len(stmt) > maxStatement {
		c.lakePage(w, r, ss, region, r.PostFormValue("store"), "", "The statement is longer than the editor's 64 KiB.")
		return
	}
	var out struct{ QueryId string }
	if err := c.call(r, p, "StartQuery", map[string]string{"QueryStatement": stmt}, &out); err != nil {
		c.lakePage(w, r, ss, region, r.PostFormValue("store"), stmt, errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"lake/query?"+url.Values{"region": {region}, "id": {out.QueryId}}.Encode(), http.StatusSeeOther)
}

type queryData struct {
	ID, Statement, Status, Error, Created string
	Matched, Scanned, Millis              int64
	Done                                  bool
	Columns                               []string
	Rows                                  [][]string
	Total                                 int64
	Next, Download, Refresh               string
}

type resultsOutput struct {
	QueryStatus     string
	QueryStatistics struct{ ResultsCount, TotalResultsCount int64 }
	QueryResultRows [][]map[string]string
	NextToken       string
	ErrorMessage    string
}

// table turns result rows (cells of one column each, null cells left
// out) into columns in order of appearance and rows of strings.
func table(rows [][]map[string]string, cols []string) ([]string, [][]string) {
	for _, row := range rows {
		for _, cell := range row {
			for k := range cell {
				if !slices.Contains(cols, k) {
					cols = append(cols, k)
				}
			}
		}
	}
	out := make([][]string, 0, len(rows))
	for _, row := range rows {
		vals := make([]string, len(cols))
		for _, cell := range row {
			for k, v := range cell {
				vals[slices.Index(cols, k)] = v
			}
		}
		out = append(out, vals)
	}
	return cols, out
}

// lakeQuery shows a query's status (DescribeQuery) and, once finished, a
// page of its results (GetQueryResults).
func (c *Console) lakeQuery(w http.ResponseWriter, r *http.Request, ss *session) {
	region := regionOf(r, ss)
	p := ss.Principal
	p.Region = region
	q := r.URL.Query()
	id := q.Get("id")
	pg := page{Title: "Lake query", Nav: "lake", Session: ss, Region: region}
	var desc struct {
		QueryId, QueryString, QueryStatus, ErrorMessage string
		QueryStatistics                                 struct {
			EventsMatched, EventsScanned, ExecutionTimeInMillis int64
			CreationTime                                        float64
		}
	}
	if err := c.call(r, p, "DescribeQuery", map[string]string{"QueryId": id}, &desc); err != nil {
		pg.Error = errorText(err)
		c.render(w, statusOf(err), "query", pg)
		return
	}
	st := desc.QueryStatistics
	d := queryData{ID: desc.QueryId, Statement: desc.QueryString, Status: desc.QueryStatus, Error: desc.ErrorMessage,
		Created: epochText(st.CreationTime), Matched: st.EventsMatched, Scanned: st.EventsScanned, Millis: st.ExecutionTimeInMillis}
	v := url.Values{"region": {region}, "id": {id}}
	switch desc.QueryStatus {
	case "QUEUED", "RUNNING":
		d.Refresh = Prefix + "lake/query?" + v.Encode()
	case "FINISHED":
		d.Done = true
		in := map[string]any{"QueryId": id, "MaxQueryResults": 100}
		if t := q.Get("token"); t != "" {
			in["NextToken"] = t
		}
		var out resultsOutput
		if err := c.call(r, p, "GetQueryResults", in, &out); err != nil {
			pg.Error = errorText(err)
			c.render(w, statusOf(err), "query", pg)
			return
		}
		d.Columns, d.Rows = table(out.QueryResultRows, nil)
		d.Total = out.QueryStatistics.TotalResultsCount
		if out.NextToken != "" {
			nv := url.Values{"region": {region}, "id": {id}, "token": {out.NextToken}}
			d.Next = Prefix + "lake/query?" + nv.Encode()
		}
		d.Download = Prefix + "lake/query/download?" + v.Encode()
	}
	pg.Data = d
	c.render(w, http.StatusOK, "query", pg)
}

// lakeDownload streams a finished query's results, every page, as CSV.
// The header is the columns of the first page; a column that is null
// throughout it and set later is written as an extra cell at the end of
// the rows from then on (a CSV has one header).
func (c *Console) lakeDownload(w http.ResponseWriter, r *http.Request, ss *session) {
	region := regionOf(r, ss)
	p := ss.Principal
	p.Region = region
	id := r.URL.Query().Get("id")
	in := map[string]any{"QueryId": id, "MaxQueryResults": 1000}
	var cols []string
	var cw *csv.Writer
	for {
		var out resultsOutput
		if err := c.callRetrying(r, p, "GetQueryResults", in, &out); err != nil {
			if cw == nil {
				c.render(w, statusOf(err), "error", page{Title: "Download", Session: ss, Region: region, Error: errorText(err)})
				return
			}
			c.cfg.Logger.Warn("console: a query download ended early", "err", err)
			panic(http.ErrAbortHandler)
		}
		if cw == nil && out.QueryStatus != "FINISHED" {
			c.render(w, http.StatusConflict, "error", page{Title: "Download", Session: ss, Region: region,
				Error: "The query is " + out.QueryStatus + ": only a finished query's results can be downloaded."})
			return
		}
		var rows [][]string
		cols, rows = table(out.QueryResultRows, cols)
		if cw == nil {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="query-results.csv"`)
			w.Header().Set("Cache-Control", "no-store")
			cw = csv.NewWriter(w)
			cw.Write(csvCells(slices.Clone(cols)))
		}
		for _, row := range rows {
			cw.Write(csvCells(row))
		}
		cw.Flush()
		if out.NextToken == "" {
			return
		}
		in["NextToken"] = out.NextToken
	}
}

// lakeCreate creates an event data store (CreateEventDataStore) from the
// form: name, retention, multi-Region, termination protection. The API
// validates it; a refusal shows its error (AWS's message) above the list.
func (c *Console) lakeCreate(w http.ResponseWriter, r *http.Request, ss *session) {
	region := formRegion(r, ss)
	p := ss.Principal
	p.Region = region
	in := map[string]any{"Name": r.PostFormValue("name"),
		"MultiRegionEnabled":           r.PostFormValue("multi_region") == "on",
		"TerminationProtectionEnabled": r.PostFormValue("termination_protection") == "on"}
	if days := strings.TrimSpace(r.PostFormValue("retention")); days != "" {
		n, err := strconv.Atoi(days)
		if err != nil {
			// As the API says of a retention period out of its range.
			c.lakePage(w, r, ss, region, "", "", "The retention period must be a whole number of days.")
			return
		}
		in["RetentionPeriod"] = n
	}
	var out struct{ EventDataStoreArn string }
	if err := c.call(r, p, "CreateEventDataStore", in, &out); err != nil {
		c.lakePage(w, r, ss, region, "", "", errorText(err))
		return
	}
	id := out.EventDataStoreArn[strings.LastIndex(out.EventDataStoreArn, "/")+1:]
	http.Redirect(w, r, Prefix+"lake?"+url.Values{"region": {region}, "store": {id}}.Encode(), http.StatusSeeOther)
}

// lakeProtect turns a store's termination protection on or off
// (UpdateEventDataStore), as AWS's console does before a delete.
func (c *Console) lakeProtect(w http.ResponseWriter, r *http.Request, ss *session) {
	region := formRegion(r, ss)
	p := ss.Principal
	p.Region = region
	store := r.PostFormValue("store")
	in := map[string]any{"EventDataStore": store, "TerminationProtectionEnabled": r.PostFormValue("protect") == "on"}
	if err := c.call(r, p, "UpdateEventDataStore", in, nil); err != nil {
		c.lakePage(w, r, ss, region, store, "", errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"lake?"+url.Values{"region": {region}, "store": {storeID(store)}}.Encode(), http.StatusSeeOther)
}

// lakeDelete deletes an event data store (DeleteEventDataStore: it goes to
// PENDING_DELETION, as in AWS); termination protection refuses it with
// the API's error.
func (c *Console) lakeDelete(w http.ResponseWriter, r *http.Request, ss *session) {
	region := formRegion(r, ss)
	p := ss.Principal
	p.Region = region
	store := r.PostFormValue("store")
	if err := c.call(r, p, "DeleteEventDataStore", map[string]string{"EventDataStore": store}, nil); err != nil {
		c.lakePage(w, r, ss, region, storeID(store), "", errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"lake?"+url.Values{"region": {region}}.Encode(), http.StatusSeeOther)
}

// storeID is the ID of a store named by its ARN or ID.
func storeID(ref string) string { return ref[strings.LastIndex(ref, "/")+1:] }
