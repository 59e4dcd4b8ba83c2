package routes

import (
	"net/http"
	"net/url"
	"testing"
)

func TestMatchREST(t *testing.T) {
	s3 := Lookup("s3")
	lambda := Lookup("lambda")
	cases := []struct {
		svc    *Service
		method string
		target string
		hdr    map[string]string
		want   string
	}{
		{s3, "GET", "/", nil, "ListBuckets"},
		{s3, "PUT", "/b", nil, "CreateBucket"},
		{s3, "GET", "/b", nil, "ListObjects"},
		{s3, "GET", "/b/", nil, "ListObjects"},
		{s3, "GET", "/b?list-type=2&prefix=a", nil, "ListObjectsV2"},
		{s3, "GET", "/b?policy", nil, "GetBucketPolicy"},
		{s3, "PUT", "/b?policy", nil, "PutBucketPolicy"},
		{s3, "GET", "/b?acl", nil, "GetBucketAcl"},
		{s3, "PUT", "/b?tagging", nil, "PutBucketTagging"},
		{s3, "GET", "/b?location", nil, "GetBucketLocation"},
		{s3, "GET", "/b/a/b%20c.txt", nil, "GetObject"},
		{s3, "HEAD", "/b/k", nil, "HeadObject"},
		{s3, "HEAD", "/b", nil, "HeadBucket"},
		{s3, "PUT", "/b/k", nil, "PutObject"},
		{s3, "PUT", "/b/k", map[string]string{"x-amz-copy-source": "/o/k"}, "CopyObject"},
		{s3, "PUT", "/b/k?partNumber=1&uploadId=x", nil, "UploadPart"},
		{s3, "POST", "/b/k?uploads", nil, "CreateMultipartUpload"},
		{s3, "POST", "/b/k?uploadId=x", nil, "CompleteMultipartUpload"},
		{s3, "DELETE", "/b/k?uploadId=x", nil, "AbortMultipartUpload"},
		{s3, "GET", "/b/k?tagging", nil, "GetObjectTagging"},
		{s3, "POST", "/b?delete", nil, "DeleteObjects"},
		{s3, "DELETE", "/b/k", nil, "DeleteObject"},
		{s3, "DELETE", "/b", nil, "DeleteBucket"},
		{lambda, "POST", "/2015-03-31/functions/f/invocations", nil, "Invoke"},
		{lambda, "GET", "/2015-03-31/functions/f", nil, "GetFunction"},
		{lambda, "POST", "/2015-03-31/functions", nil, "CreateFunction"},
		{lambda, "GET", "/2015-03-31/functions/", nil, "ListFunctions"},
	}
	for _, c := range cases {
		u, _ := url.Parse("http://h" + c.target)
		h := http.Header{}
		for k, v := range c.hdr {
			h.Set(k, v)
		}
		op, _ := c.svc.MatchREST(c.method, u.EscapedPath(), u.Query(), h)
		got := ""
		if op != nil {
			got = op.Name
		}
		if got != c.want {
			t.Errorf("%s %s %s: got %q, want %q", c.svc.Name, c.method, c.target, got, c.want)
		}
	}
	op, l := s3.MatchREST("GET", "/b/a/b%20c.txt", nil, nil)
	if op == nil || l["Bucket"] != "b" || l["Key"] != "a/b c.txt" {
		t.Errorf("labels: %v", l)
	}
}

func TestEveryServiceLoaded(t *testing.T) {
	for _, n := range []string{"s3", "iam", "sts", "ec2", "lambda", "dynamodb", "sqs", "sns", "kms", "secretsmanager", "ssm", "logs", "cloudtrail"} {
		s := Lookup(n)
		if s == nil || len(s.Operations) == 0 {
			t.Fatalf("%s: no operations", n)
		}
	}
	if Lookup("dynamodb").MatchTarget("DynamoDB_20120810.PutItem") == nil {
		t.Error("PutItem not found by target")
	}
	if Lookup("dynamodb").MatchTarget("Other.PutItem") != nil {
		t.Error("wrong prefix matched")
	}
}

func FuzzMatchREST(f *testing.F) {
	for _, s := range []string{"/", "/b/k?uploads", "/b?list-type=2", "/2015-03-31/functions/f/invocations", "/%zz/", "//"} {
		f.Add("GET", s)
	}
	s3, lambda := Lookup("s3"), Lookup("lambda")
	f.Fuzz(func(t *testing.T, method, target string) {
		u, err := url.Parse("http://h" + target)
		if err != nil {
			return
		}
		s3.MatchREST(method, u.EscapedPath(), u.Query(), http.Header{})
		lambda.MatchREST(method, u.EscapedPath(), u.Query(), http.Header{})
	})
}
