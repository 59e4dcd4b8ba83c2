package console

import (
	"math"
	"net/http"
	"net/url"
	"time"
)

type trailRow struct {
	Name, ARN, HomeRegion, Bucket, Status             string
	MultiRegion, Logging                              bool
	LatestDelivery, LatestDigest, DeliveryError, Note string
}

type trailsOutput struct {
	TrailList []struct {
		Name, TrailARN, HomeRegion, S3BucketName string
		IsMultiRegionTrail                       bool
	} `json:"trailList"`
}

type trailStatus struct {
	IsLogging                                    bool
	LatestDeliveryTime, LatestDigestDeliveryTime float64
	LatestDeliveryError                          string
}

func epochText(f float64) string {
	if f == 0 {
		return ""
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC().Format("2006-01-02 15:04:05 UTC")
}

// trails lists the region's trails with their status (DescribeTrails,
// then GetTrailStatus for each).
func (c *Console) trails(w http.ResponseWriter, r *http.Request, ss *session) {
	region := regionOf(r, ss)
	c.trailsPage(w, r, ss, region, "")
}

// trailsPage renders the trails of region, with msg (an API's answer) on top.
func (c *Console) trailsPage(w http.ResponseWriter, r *http.Request, ss *session, region, msg string) {
	p := ss.Principal
	p.Region = region
	pg := page{Title: "Trails", Nav: "trails", Session: ss, Region: region}
	var out trailsOutput
	if err := c.call(r, p, "DescribeTrails", map[string]any{}, &out); err != nil {
		pg.Error = errorText(err)
		c.render(w, statusOf(err), "trails", pg)
		return
	}
	var rowsOut []trailRow
	for _, t := range out.TrailList {
		tr := trailRow{Name: t.Name, ARN: t.TrailARN, HomeRegion: t.HomeRegion, Bucket: t.S3BucketName, MultiRegion: t.IsMultiRegionTrail}
		var st trailStatus
		if err := c.call(r, p, "GetTrailStatus", map[string]string{"Name": t.TrailARN}, &st); err != nil {
			tr.Note = errorText(err)
		} else {
			tr.Logging, tr.LatestDelivery, tr.LatestDigest, tr.DeliveryError = st.IsLogging, epochText(st.LatestDeliveryTime),
				epochText(st.LatestDigestDeliveryTime), st.LatestDeliveryError
		}
		rowsOut = append(rowsOut, tr)
	}
	pg.Data = rowsOut
	pg.Error = msg
	c.render(w, http.StatusOK, "trails", pg)
}

// trailLogging starts or stops a trail's logging (StartLogging,
// StopLogging), then shows the list again with the API's error, if any.
func (c *Console) trailLogging(w http.ResponseWriter, r *http.Request, ss *session) {
	region := formRegion(r, ss)
	p := ss.Principal
	p.Region = region
	op := "StopLogging"
	if r.PostFormValue("action") == "start" {
		op = "StartLogging"
	}
	if err := c.call(r, p, op, map[string]string{"Name": r.PostFormValue("name")}, nil); err != nil {
		c.trailsPage(w, r, ss, region, errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"trails?"+url.Values{"region": {region}}.Encode(), http.StatusSeeOther)
}

// trailCreate creates a trail (CreateTrail; the console then starts its
// logging, as AWS's console does) and shows the list, or the API's
// validation error above the form.
func (c *Console) trailCreate(w http.ResponseWriter, r *http.Request, ss *session) {
	region := formRegion(r, ss)
	p := ss.Principal
	p.Region = region
	in := map[string]any{"Name": r.PostFormValue("name"), "S3BucketName": r.PostFormValue("bucket"),
		"IsMultiRegionTrail": r.PostFormValue("multi_region") == "on"}
	if prefix := r.PostFormValue("prefix"); prefix != "" {
		in["S3KeyPrefix"] = prefix
	}
	var out struct{ TrailARN string }
	if err := c.call(r, p, "CreateTrail", in, &out); err != nil {
		c.trailsPage(w, r, ss, region, errorText(err))
		return
	}
	if err := c.call(r, p, "StartLogging", map[string]string{"Name": out.TrailARN}, nil); err != nil {
		c.trailsPage(w, r, ss, region, "The trail was created, but its logging did not start: "+errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"trails?"+url.Values{"region": {region}}.Encode(), http.StatusSeeOther)
}

// trailDelete deletes a trail (DeleteTrail).
func (c *Console) trailDelete(w http.ResponseWriter, r *http.Request, ss *session) {
	region := formRegion(r, ss)
	p := ss.Principal
	p.Region = region
	if err := c.call(r, p, "DeleteTrail", map[string]string{"Name": r.PostFormValue("name")}, nil); err != nil {
		c.trailsPage(w, r, ss, region, errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"trails?"+url.Values{"region": {region}}.Encode(), http.StatusSeeOther)
}
