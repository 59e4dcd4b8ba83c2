package gateway

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/cairn-audit/cairn/internal/gateway/routes"
)

func TestParseError(t *testing.T) {
	cases := []struct {
		status   int
		hdr      map[string]string
		body     string
		code     string
		msgStart string
	}{
		{400, nil, `{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}`, "ResourceNotFoundException", "Requested"},
		{400, nil, `{"__type":"ValidationException:http://internal.amazon.com/","Message":"bad"}`, "ValidationException", "bad"},
		{404, nil, `<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`, "NoSuchKey", "The specified"},
		{400, nil, `<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>user x</Message></Error></ErrorResponse>`, "NoSuchEntity", "user x"},
		{404, nil, ``, "NotFound", ""},
		{403, nil, `garbage`, "AccessDenied", ""},
		{400, map[string]string{"X-Amzn-ErrorType": "ResourceConflictException:http://x"}, `{"message":"m"}`, "ResourceConflictException", "m"},
		{500, nil, `{"__type": 5}`, "InternalError", ""},
		{400, nil, `<Error><Code>A`, "A", ""},
	}
	for _, c := range cases {
		h := http.Header{}
		for k, v := range c.hdr {
			h.Set(k, v)
		}
		code, msg := parseError(c.status, h, []byte(c.body))
		if code != c.code || len(msg) < len(c.msgStart) || msg[:len(c.msgStart)] != c.msgStart {
			t.Errorf("%s: got %q %q, want %q %q", c.body, code, msg, c.code, c.msgStart)
		}
	}
}

func FuzzParseError(f *testing.F) {
	for _, s := range []string{`{"__type":"a#B","message":"m"}`, `<Error><Code>X</Code><Message>Y</Message></Error>`, ``, `<`, `{`} {
		f.Add(400, s)
	}
	f.Fuzz(func(t *testing.T, status int, body string) {
		code, msg := parseError(status, http.Header{}, []byte(body))
		if code == "" && status >= 400 && status < 600 && http.StatusText(status) != "" {
			t.Errorf("no code for status %d body %q", status, body)
		}
		if len(code) > 1024 || len(msg) > 1024 {
			t.Error("unbounded code or message")
		}
	})
}

// FuzzResponseElements feeds hostile response bodies to the converters of
// every protocol (JSON, query XML, EC2 XML, S3): no panic, and what they
// return is JSON.
func FuzzResponseElements(f *testing.F) {
	f.Add(`<CreateUserResponse><CreateUserResult><User><UserName>bob</UserName><CreateDate>2026-01-02T03:04:05Z</CreateDate></User></CreateUserResult></CreateUserResponse>`)
	f.Add(`<a><member>1</member><member>2</member></a>`)
	f.Add(`<RunInstancesResponse><requestId>r</requestId><instancesSet><item><instanceState><code>0</code></instanceState><launchTime>x</launchTime></item></instancesSet><groupSet/></RunInstancesResponse>`)
	f.Add(`{"KeyMetadata":{"CreationDate":1.7e9,"Arn":"a"},"Tags":{"K":1}}`)
	f.Add(`{"CreationDate":1e400}`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, svc := range []string{"iam", "sts", "ec2", "kms", "s3", "secretsmanager"} {
			s := routes.Lookup(svc)
			for _, name := range []string{"CreateUser", "AssumeRole", "RunInstances", "CreateKey", "PutObject", "CreateSecret"} {
				st := &state{respHeader: http.Header{}}
				st.captured.WriteString(body)
				c := call{svc: s, op: s.Operation(name), name: name}
				if raw := responseElements(c, st, nil); raw != nil && !json.Valid(raw) {
					t.Errorf("%s %s: not JSON: %s", svc, name, raw)
				}
			}
		}
		formParams(map[string][]string{body: {body}}, nil)
	})
}

// FuzzRequestBodies feeds hostile bodies to the requestParameters parsers:
// S3 configuration XML, EC2 query forms and JSON bodies walked by shape.
func FuzzRequestBodies(f *testing.F) {
	f.Add(`<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>k</Key><Value>true</Value></Tag></TagSet></Tagging>`)
	f.Add(`Filter.1.Name=x&Filter.1.Value.1=y&InstanceId.1=i&Tag.1.Key=a&A.1.B.2.C=3&TagSpecification.1.Tag.1.Key=k`)
	f.Add(`MaxCount=NaN&MinCount=1&DisableApiTermination=true&BlockDeviceMapping.1.Ebs.VolumeSize=0x10`)
	f.Add(`{"TableName":"t","Key":{"a":{"M":{"b":{"L":[{"S":"x"}]}}}}}`)
	ddb := routes.Lookup("dynamodb")
	var getItem *routes.Operation
	for i := range ddb.Operations {
		if ddb.Operations[i].Name == "GetItem" {
			getItem = &ddb.Operations[i]
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		params := map[string]any{}
		s3BodyParams("PutBucketTagging", []byte(body), params)
		s3BodyParams("PutBucketPolicy", []byte(body), params)
		if _, err := json.Marshal(params); err != nil {
			t.Errorf("S3 params do not marshal: %v", err)
		}
		if form, err := url.ParseQuery(body); err == nil {
			p := ec2Params(form, "RunInstances", nil)
			typeParams(p, "", routes.Lookup("ec2").InTypes, 0)
			if _, err := json.Marshal(p); err != nil {
				t.Errorf("EC2 params do not marshal: %v", err)
			}
		}
		if _, err := json.Marshal(jsonParams([]byte(body), ddb, getItem, nil)); err != nil {
			t.Errorf("JSON params do not marshal: %v", err)
		}
	})
}

func FuzzClassify(f *testing.F) {
	f.Add("GET", "/bucket/key?acl", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/s3/aws4_request, SignedHeaders=host", "")
	f.Add("POST", "/", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/dynamodb/aws4_request", "DynamoDB_20120810.PutItem")
	f.Add("POST", "/", "AWS4-HMAC-SHA256 Credential=/////", "X.")
	g := &Gateway{}
	f.Fuzz(func(t *testing.T, method, target, auth, amzTarget string) {
		r, err := http.NewRequest("GET", "http://h", nil)
		if err != nil {
			return
		}
		r.Method = method
		if u, err := r.URL.Parse(target); err == nil {
			r.URL = u
		}
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Target", amzTarget)
		q := r.URL.Query()
		sc := credentialScope(r, q)
		g.classify(r, sc, q, q)
	})
}
