package trail

import (
	"context"
	"errors"
	"testing"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/bucket"
)

// FuzzPutEventSelectors sends arbitrary bodies to PutEventSelectors and
// PutInsightSelectors: each answers a value or an AWS-shaped error, never
// panics, and whatever it stores, Selects evaluates without panicking.
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
	local, _ := bucket.NewLocal("logs", f.TempDir())
	f.Fuzz(func(t *testing.T, body []byte) {
		reg := &Registry{trails: map[string]*Trail{}} // in memory: no file to save
		a := &API{Registry: reg, Bucket: func(string) (bucket.Bucket, bool) { return local, true }, MaxPerRegion: 5}
		caller := apiserver.Caller{Principal: audit.Principal{AccountID: acct, Region: "us-east-1"}}
		ctx := context.Background()
		if _, err := a.createTrail(ctx, &apiserver.Request{Caller: caller, Body: []byte(`{"Name":"main","S3BucketName":"logs"}`)}); err != nil {
			t.Fatal(err)
		}
		for _, op := range []func(context.Context, *apiserver.Request) (any, error){a.putEventSelectors, a.putInsightSelectors} {
			_, err := op(ctx, &apiserver.Request{Caller: caller, Body: body})
			var ae *audit.Error
			var we *awsjson.Error
			if err != nil && !asErr(err, &ae) && !asErr(err, &we) {
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

func asErr[T error](err error, target *T) bool { return errorsAs(err, target) }

func errorsAs[T error](err error, target *T) bool { return errors.As(err, target) }
