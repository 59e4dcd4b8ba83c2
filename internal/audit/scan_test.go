package audit_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	. "github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// checkSame fails when Extract and the decoding disagree on raw: both
// errors (the same message) or the same Record.
func checkSame(t *testing.T, name string, raw []byte) (scanned bool) {
	t.Helper()
	got, gotErr := Extract(raw)
	want, wantErr := ExtractDecoded(raw)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%s: Extract error = %v; decoding's = %v\nrecord: %.300q", name, gotErr, wantErr, raw)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: Extract =\n%+v\ndecoding =\n%+v\nrecord: %.300q", name, got, want, raw)
	}
	return Scans(raw)
}

// TestScanMatchesDecoding (differential): on every real record the field
// scanner reads what the JSON decoding read, and it is the scanner that
// reads them (not the fallback).
func TestScanMatchesDecoding(t *testing.T) {
	recs := audittest.RealRecords(t)
	fast := 0
	for _, rr := range recs {
		if checkSame(t, rr.File, rr.Raw) {
			fast++
		}
	}
	if fast < len(recs)*95/100 {
		t.Errorf("the scanner read %d of %d real records; want at least 95%%", fast, len(recs))
	}
	t.Logf("scanner read %d of %d real records", fast, len(recs))
}

// scanVariants are records the scanner must read as the decoding does, or
// leave to it: repeated, escaped, null, mistyped and odd members, bad JSON.
var scanVariants = []string{
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`,
	` {"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"} `,
	`{"eventID":"e","eventID":"f","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`,
	`{"eventID":"e\u0041","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`,
	`{"event\u0049D":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`,
	`{"eventid":"e","EventID":"x","eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`,
	`{"eventID":null,"eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`,
	`{"eventID":7,"eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`,
	`{"eventID":"e\xff","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","x":"\xfe"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","userIdentity":{"accountId":"2","type":"AssumedRole","arn":"a/b","accessKeyId":"AK"}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","userIdentity":{"accountId":"2","type":"IdentityCenterUser","onBehalfOf":{"userId":"u","x":[1,2]}}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","userIdentity":{"accountId":"2","type":5}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","userIdentity":{"accountId":"2","accountId":"3"}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","userIdentity":"weird","recipientAccountId":"1"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","userIdentity":{"accountId":"2","onBehalfOf":null}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","resources":[{"ARN":"arn:aws:s3:::b/k","type":"AWS::S3::Object"},{},{"ARNPrefix":"arn:aws:s3:::b/"}]}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","resources":[null,{"ARN":"x"}]}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","resources":[{"ARN":5}]}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","resources":{"not":"a list"}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","readOnly":"true","managementEvent":"false"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","readOnly":false,"eventCategory":"Data"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","readOnly":"tru\u0065"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventType":"AwsCloudTrailInsight","insightDetails":{"eventSource":"s","eventName":"n"}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventName":"x","insightDetails":{}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","insightDetails":null}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","insightDetails":"x"}`,
	// Derived resources: requestParameters of a write event of a covered source.
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","readOnly":false,"requestParameters":{"bucketName":"b"}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","readOnly":false,"requestParameters":{"bucketName":"b"},"resources":null}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","readOnly":false,"requestParameters":{"bucketName":"b"},"resources":[]}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventSource":"s3.amazonaws.com","readOnly":false,"requestParameters":{"bucketName":"b"},"x":1e400}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventSource":"s3.amazonaws.com","readOnly":false,"requestParameters":{"bucketName":"b"},"x":` + strings.Repeat("9", 400) + `}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventSource":"s3.amazonaws.com","readOnly":false,"requestParameters":{"bucketName":"b"},"requestParameters":{"bucketName":"c"}}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventSource":"s3.amazonaws.com","readOnly":false,"requestParameters":"b"}`,
	// Not JSON, or not quite.
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}x`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1",}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","n":01}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","n":-}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","n":1.}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","n":[1,2,]}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","n":tru}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","s":"a` + "\x01" + `"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","s":"\x"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","s":"\ud800"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","s":"\ud83d\ude00"}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"` + strings.Repeat(`,"d":[`, 300) + strings.Repeat(`]`, 300) + `}`,
	`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","d":` + strings.Repeat(`[`, 20000) + strings.Repeat(`]`, 20000) + `}`,
	"{\f\"eventID\":\"e\"}",
	`{"eventID":"e","eventTime":"yesterday","awsRegion":"r","recipientAccountId":"1"}`,
	`{"eventID":"e"`,
	`{`,
	`{}`,
}

func TestScanVariants(t *testing.T) {
	for i, v := range scanVariants {
		checkSame(t, fmt.Sprintf("variant %d", i), []byte(v))
	}
}

// FuzzScanMatchesDecoding: on any input Extract (scanner first) and the
// decoding agree.
func FuzzScanMatchesDecoding(f *testing.F) {
	for _, v := range scanVariants {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSame(t, "fuzz", b)
	})
}

// BenchmarkExtractDecoded is BenchmarkExtract with the field scanner off:
// the decoding it replaced, for the comparison.
func BenchmarkExtractDecoded(b *testing.B) {
	recs := audittest.RealRecords(b)
	for b.Loop() {
		for _, rr := range recs {
			_, _ = ExtractDecoded(rr.Raw)
		}
	}
	b.ReportMetric(float64(len(recs)*b.N)/b.Elapsed().Seconds(), "records/s")
}
