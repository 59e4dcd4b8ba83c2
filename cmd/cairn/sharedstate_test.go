package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestTwoNodesShareState runs two `cairn serve` on one PostgreSQL
// database, each with its own data dir, and drives them through
// aws-sdk-go-v2 and a browser: a trail created through node A is listed,
// started and changed through node B (and stays invisible to another
// account); a NextToken from A pages on B (a forged one is refused there);
// a console session signed in on A works on B, and a sign-out on B ends it
// on A; the findings of calls made through either node (both run
// detection: there are no leases yet) are listed, once each, on both.
func TestTwoNodesShareState(t *testing.T) {
	dsn := pgtest.Database(t)
	logs, rules := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(rules, "trail.yml"), trailChangeRule)
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf("store:\n  postgres: %q\nbuckets:\n  - name: local-logs\n    local_dir: %s\n", dsn, logs) +
		fmt.Sprintf("detections:\n  rules: [%q]\n  builtin: false\n", rules)
	a := startServer(t, cfg, "")
	b := startServer(t, cfg, "")
	ctx := context.Background()
	ca, cb := alice(a), alice(b)

	t.Run("TrailCreatedOnAStartedOnB", func(t *testing.T) {
		if _, err := ca.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs")}); err != nil {
			t.Fatal(err)
		}
		d, err := cb.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{})
		if err != nil || len(d.TrailList) != 1 || aws.ToString(d.TrailList[0].Name) != "audit" {
			t.Fatalf("node B's DescribeTrails = %+v, %v; want the trail created on A", d, err)
		}
		if _, err := cb.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs")}); errCode(err) != "TrailAlreadyExistsException" {
			t.Errorf("node B's CreateTrail of A's trail = %v; want TrailAlreadyExistsException", err)
		}
		if _, err := cb.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("audit")}); err != nil {
			t.Fatal(err)
		}
		st, err := ca.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("audit")})
		if err != nil || !aws.ToBool(st.IsLogging) {
			t.Fatalf("node A's GetTrailStatus = %+v, %v; want logging (started on B)", st, err)
		}
		arn := "arn:aws:cloudtrail:us-east-1:111111111111:trail/audit"
		if _, err := cb.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: aws.String(arn),
			TagsList: []types.Tag{{Key: aws.String("team"), Value: aws.String("sec")}}}); err != nil {
			t.Fatal(err)
		}
		tags, err := ca.ListTags(ctx, &cloudtrail.ListTagsInput{ResourceIdList: []string{arn}})
		if err != nil || len(tags.ResourceTagList) != 1 || len(tags.ResourceTagList[0].TagsList) != 1 {
			t.Fatalf("node A's ListTags = %+v, %v; want B's tag", tags, err)
		}
		bob := b.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
		if d, err := bob.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{}); err != nil || len(d.TrailList) != 0 {
			t.Errorf("bob's DescribeTrails on B = %+v, %v; want none", d, err)
		}
		if _, err := cb.DeleteTrail(ctx, &cloudtrail.DeleteTrailInput{Name: aws.String("audit")}); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String("audit")}); errCode(err) != "TrailNotFoundException" {
			t.Errorf("node A's GetTrail after B deleted it = %v; want TrailNotFoundException", err)
		}
	})

	t.Run("NextTokenFromAPagesOnB", func(t *testing.T) {
		waitForEvents(t, ca, 3)
		in := &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(1)}
		first, err := ca.LookupEvents(ctx, in)
		if err != nil || first.NextToken == nil || len(first.Events) != 1 {
			t.Fatalf("node A's first page = %+v, %v; want one event and a NextToken", first, err)
		}
		in.NextToken = first.NextToken
		second, err := cb.LookupEvents(ctx, in)
		if err != nil || len(second.Events) != 1 {
			t.Fatalf("node B's page with A's NextToken = %+v, %v", second, err)
		}
		if aws.ToString(second.Events[0].EventId) == aws.ToString(first.Events[0].EventId) {
			t.Errorf("node B's next page repeats A's event %s", aws.ToString(first.Events[0].EventId))
		}
		tok := aws.ToString(first.NextToken)
		for _, forged := range []string{tok[:len(tok)-2] + "AA", "x" + tok, strings.ToUpper(tok)} {
			if forged == tok {
				continue
			}
			in.NextToken = aws.String(forged)
			if _, err := cb.LookupEvents(ctx, in); errCode(err) != "InvalidNextTokenException" {
				t.Errorf("node B's LookupEvents with a forged token = %v; want InvalidNextTokenException", err)
			}
		}
	})

	t.Run("ConsoleSessionFromAWorksOnB", func(t *testing.T) {
		jar, _ := cookiejar.New(nil) // cookies are per host, not port: A's cookie goes to B too
		browser := &http.Client{Jar: jar, Timeout: time.Until(testwait.End(t))}
		page := func(endpoint, path string) (int, string, string) {
			resp, err := browser.Get(endpoint + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Request.URL.Path, string(body)
		}
		csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
		_, _, body := page(a.endpoint, "/console/signin")
		tok := csrf.FindStringSubmatch(body)
		if tok == nil {
			t.Fatal("sign-in page without a token")
		}
		resp, err := browser.PostForm(a.endpoint+"/console/signin", url.Values{"csrf": {tok[1]}, "access_key_id": {"AKIAALICE00000000001"},
			"secret_access_key": {"alice-secret-key"}, "region": {"us-east-1"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Request.URL.Path != "/console/events" {
			t.Fatalf("sign-in on A ended at %s with %d", resp.Request.URL, resp.StatusCode)
		}
		code, path, body := page(b.endpoint, "/console/trails")
		if code != 200 || path != "/console/trails" {
			t.Fatalf("node B with A's session: %d at %s; want the trails page", code, path)
		}
		// Sign out on B (its form's CSRF token is the session's): A then
		// refuses the cookie too.
		tok = csrf.FindStringSubmatch(body)
		if tok == nil {
			t.Fatal("B's page without the session's CSRF token")
		}
		u, _ := url.Parse(a.endpoint)
		cookies := jar.Cookies(u)
		resp, err = browser.PostForm(b.endpoint+"/console/signout", url.Values{"csrf": {tok[1]}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		jar.SetCookies(u, cookies) // the browser keeps the old cookie: replayed
		if _, path, _ := page(a.endpoint, "/console/trails"); path != "/console/signin" {
			t.Errorf("node A after the sign-out on B serves %s; want the sign-in page", path)
		}
	})

	t.Run("FindingOnAListedOnB", func(t *testing.T) {
		if _, err := ca.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("watched"), S3BucketName: aws.String("local-logs")}); err != nil {
			t.Fatal(err)
		}
		find := func(ts *testServer) []string {
			c := ts.cairn(t, "AKIAALICE00000000001", "alice-secret-key", "us-east-1")
			var ids []string
			q := client.FindingsQuery{MaxResults: 1}
			for {
				p, err := c.ListFindings(ctx, q)
				if err != nil {
					t.Fatalf("ListFindings: %v", err)
				}
				for _, f := range p.Findings {
					ids = append(ids, f.ID)
				}
				if p.NextToken == "" {
					return ids
				}
				q.NextToken = p.NextToken
			}
		}
		// Three CreateTrail calls: audit's and watched's through A, and
		// B's refused second audit.
		deadline := testwait.End(t)
		for {
			onB := find(b)
			if len(onB) >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node B lists findings %v; want the 3 CreateTrail calls", onB)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for name, ts := range map[string]*testServer{"A": a, "B": b} {
			ids := find(ts)
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					t.Errorf("node %s lists finding %s twice", name, id)
				}
				seen[id] = true
			}
			if len(ids) != 3 {
				t.Errorf("node %s lists %d findings; want 3", name, len(ids))
			}
		}
	})
}
