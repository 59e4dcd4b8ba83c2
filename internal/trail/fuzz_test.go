package trail

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	localbucket "github.com/cairn-audit/cairn/internal/bucket/local"
)

// FuzzPutEventSelectors gives arbitrary selectors (bodies of
// PutEventSelectors and PutInsightSelectors) to the Service: each answers
// a trail or an *audit.Error, never panics, and whatever it stores,
// Selects evaluates without panicking. (The wire decoding is fuzzed in
// apiserver and awsjson.)
func FuzzPutEventSelectors(f *testing.F) {
	for _, s := range []string{
		`{"TrailName":"main","EventSelectors":[{"ReadWriteType":"WriteOnly","DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3:::b/"]}]}]}`,
		`{"TrailName":"main","AdvancedEventSelectors":[{"Name":"x","FieldSelectors":[{"Field":"eventCategory","Equals":["Data"]},{"Field":"resources.ARN","StartsWith":["arn:aws:s3:::b/"],"NotEndsWith":[".log"]}]}]}`,
		`{"TrailName":"main","AdvancedEventSelectors":[{"FieldSelectors":[{"Field":null}]}]}`,
		`{"TrailName":"main","EventSelectors":[{"DataResources":[{"Values":["x"]}]}]}`,
		`{"TrailName":"main","InsightSelectors":[{"InsightType":"ApiCallRateInsight"}]}`,
		`{"TrailName":"arn:aws:cloudtrail:us-east-1:111111111111:trail/main","EventSelectors":[]}`,
	} {
		f.Add([]byte(s))
	}
	const acct = "111111111111"
	recs := []audit.Record{
		rec(f, acct, "us-east-1", "ec2.amazonaws.com", "RunInstances", false, ""),
		rec(f, acct, "us-east-1", "s3.amazonaws.com", "GetObject", true, s3Data),
	}
	local, _ := localbucket.New("logs", f.TempDir())
	f.Fuzz(func(t *testing.T, body []byte) {
		reg := &Registry{trails: map[string]*Trail{}} // in memory: no file to save
		svc := &Service{Registry: reg, Bucket: func(string) (Bucket, bool) { return local, true }, MaxPerRegion: 5}
		caller := audit.Principal{AccountID: acct, Region: "us-east-1"}
		name := "main"
		if _, err := svc.Create(context.Background(), caller, Settings{Name: &name, S3BucketName: strp("logs")}); err != nil {
			t.Fatal(err)
		}
		var in struct {
			TrailName              string
			EventSelectors         []EventSelector
			AdvancedEventSelectors []audit.AdvancedSelector
			InsightSelectors       []InsightSelector
		}
		if json.Unmarshal(body, &in) != nil {
			return
		}
		_, err1 := svc.PutEventSelectors(caller, in.TrailName, in.EventSelectors, in.AdvancedEventSelectors)
		_, err2 := svc.PutInsightSelectors(caller, in.TrailName, in.InsightSelectors)
		for _, err := range []error{err1, err2} {
			var ae *audit.Error
			if err != nil && !errors.As(err, &ae) {
				t.Fatalf("error that is not AWS-shaped: %T %v", err, err)
			}
		}
		for _, tr := range reg.Trails() {
			for i := range recs {
				tr.Selects(&recs[i])
			}
			tr.logsManagementEvents()
		}
	})
}

func strp(s string) *string { return &s }
