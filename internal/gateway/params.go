package gateway

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/gateway/routes"
)

// hidden is what AWS writes in place of a secret it shows exists (SSM
// PutParameter's value, SendCommand's parameters, RDS passwords).
const hidden = "HIDDEN_DUE_TO_SECURITY_REASONS"

// omitted are secret members AWS leaves out of its records altogether
// rather than hide (compared in lower case), as the real records in
// testdata/real show: CreateAccessKey's and STS's secretAccessKey,
// CreateSecret's and PutSecretValue's secretString, KMS Encrypt's
// plaintext and Decrypt's ciphertextBlob, CreateLoginProfile's password.
var omitted = map[string]bool{
	"secretaccesskey": true, "secretstring": true, "secretbinary": true, "plaintext": true,
	"ciphertextblob": true, "password": true, "newpassword": true, "oldpassword": true,
}

// secretNames are member names hidden in every service, beside those the
// model marks sensitive (compared in lower case). No real record shows
// these: cairn hides rather than leaves them out.
var secretNames = map[string]bool{
	"privatekey": true, "zipfile": true, "userdata": true,
}

func lowerFirst(s string) string {
	if s == "" || !isUpper(s[0]) {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// redact leaves out the members AWS leaves out (omitted) and hides the
// values of the other secret members anywhere in v: those secretNames
// names, and those the model marks sensitive where it does (sensitive
// holds parent.name in lower case, routes.Service.Sensitive; EC2's
// {"items": [...]} wrappers are not parents).
func redact(v any, sensitive map[string]bool) any { return redactAt(v, "", sensitive, 0) }

func redactAt(v any, parent string, sensitive map[string]bool, depth int) any {
	if depth > 64 {
		return v
	}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			lk := strings.ToLower(k)
			switch {
			case omitted[lk]:
				delete(t, k)
			case secretNames[lk] || sensitive[parent+"."+lk]:
				t[k] = hidden
			case lk == "items":
				t[k] = redactAt(x, parent, sensitive, depth+1)
			default:
				t[k] = redactAt(x, lk, sensitive, depth+1)
			}
		}
	case []any:
		for i := range t {
			t[i] = redactAt(t[i], parent, sensitive, depth+1)
		}
	}
	return v
}

// jsonParams turns a JSON request body into requestParameters as AWS
// writes them: structure member names lower-camel at every depth
// (provisionedThroughput.readCapacityUnits), the keys of maps as sent
// (encryptionContext, tags maps, DynamoDB attribute names), secrets
// redacted. The operation's input shape (routes.Service.Shapes) says where
// the maps are; without one, every name is a member name.
func jsonParams(body []byte, svc *routes.Service, op *routes.Operation, sensitive map[string]bool) map[string]any {
	var v map[string]any
	if json.Unmarshal(body, &v) != nil || len(v) == 0 {
		return nil
	}
	var shapes map[string]routes.Shape
	input := ""
	if svc != nil && op != nil {
		shapes, input = svc.Shapes, op.Input
	}
	out, _ := camelJSON(v, input, shapes, 0).(map[string]any)
	redact(out, sensitive)
	return out
}

// camelJSON lower-camel-cases the member names of v, a value of shape
// (routes.Shape; "" when no map lies under it).
func camelJSON(v any, shape string, shapes map[string]routes.Shape, depth int) any {
	if depth > 64 {
		return v
	}
	sh, known := shapes[shape]
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			switch {
			case known && sh.Map:
				out[k] = camelJSON(x, sh.Elem, shapes, depth+1)
			case known:
				out[lowerFirst(k)] = camelJSON(x, sh.Members[k], shapes, depth+1)
			default:
				out[lowerFirst(k)] = camelJSON(x, "", shapes, depth+1)
			}
		}
		return out
	case []any:
		for i := range t {
			t[i] = camelJSON(t[i], sh.Elem, shapes, depth+1)
		}
		return t
	}
	return v
}

// formParams turns query-protocol parameters into requestParameters:
// Action, Version and signature parameters dropped, dotted names nested
// (Tags.member.1.Key → tags: [{key: ...}]), names lower-camel.
func formParams(form url.Values, sensitive map[string]bool) map[string]any {
	keys := make([]string, 0, len(form))
	for k := range form {
		if k == "Action" || k == "Version" || strings.HasPrefix(k, "X-Amz-") || k == "AWSAccessKeyId" ||
			k == "Signature" || k == "SignatureMethod" || k == "SignatureVersion" || k == "Timestamp" {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	root := map[string]any{}
	for _, k := range keys {
		parts := strings.Split(k, ".")
		var segs []string
		for _, p := range parts {
			if p == "member" || p == "entry" || p == "item" {
				continue
			}
			segs = append(segs, p)
		}
		setPath(root, segs, form.Get(k))
	}
	out, ok := listify(root).(map[string]any)
	if !ok { // only numeric names: not a query request
		return nil
	}
	redact(out, sensitive)
	return out
}

// setPath stores v at segs; numeric segments become map keys that listify
// turns into arrays.
func setPath(m map[string]any, segs []string, v string) {
	for i, s := range segs {
		if _, err := strconv.Atoi(s); err != nil {
			s = lowerFirst(s)
		}
		if i == len(segs)-1 {
			if _, exists := m[s]; !exists {
				m[s] = v
			}
			return
		}
		next, ok := m[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[s] = next
		}
		m = next
	}
}

func listify(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	numeric := len(m) > 0
	for k, x := range m {
		m[k] = listify(x)
		if _, err := strconv.Atoi(k); err != nil {
			numeric = false
		}
	}
	if !numeric {
		return m
	}
	idx := make([]int, 0, len(m))
	for k := range m {
		n, _ := strconv.Atoi(k)
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]any, 0, len(idx))
	for _, n := range idx {
		out = append(out, m[strconv.Itoa(n)])
	}
	return out
}

// restParams gathers a REST operation's members bound to the URI, query
// string and headers. S3 records them as AWS does: bucketName, key, Host,
// header members under their header names and every query parameter (the
// sub-resource included) under its own name.
func restParams(c *call, r *http.Request, q url.Values, sensitive map[string]bool) map[string]any {
	out := map[string]any{}
	if c.svc.Name == "s3" {
		if c.bucket != "" {
			out["bucketName"] = c.bucket
		}
		if c.key != "" {
			out["key"] = c.key
		}
		out["Host"] = r.Host
		for k, vs := range q {
			if strings.HasPrefix(k, "X-Amz-") || k == "x-id" || k == "AWSAccessKeyId" || k == "Signature" || k == "Expires" {
				continue
			}
			out[k] = strings.Join(vs, ",")
		}
		if c.op != nil {
			for _, m := range c.op.Members {
				if m.Location == "header" {
					if v := r.Header.Get(m.LocationName); v != "" && !s3Unrecorded(m.LocationName) {
						out[m.LocationName] = v
					}
				}
			}
		}
		redact(out, sensitive)
		return out
	}
	if c.op != nil {
		for _, m := range c.op.Members {
			var v string
			switch m.Location {
			case "uri":
				v = c.labels[m.Name]
			case "querystring":
				v = q.Get(m.LocationName)
			case "header":
				v = r.Header.Get(m.LocationName)
			}
			if v != "" {
				out[lowerFirst(m.Name)] = v
			}
		}
	}
	redact(out, sensitive)
	return out
}

// resources lists the ARNs a call touched, as AWS records them for the
// resource types it knows. resp is the captured response body (KMS: the
// key an alias named).
func resources(c *call, account, region string, params map[string]any, resp []byte) []audit.EventResource {
	var res []audit.EventResource
	switch c.svc.Name {
	case "s3":
		if c.key != "" {
			res = append(res, audit.EventResource{Type: "AWS::S3::Object", ARN: "arn:aws:s3:::" + c.bucket + "/" + c.key})
		}
		// CreateBucket's records name no resource (testdata/real: 5 of 5).
		if c.bucket != "" && c.name != "CreateBucket" {
			res = append(res, audit.EventResource{AccountID: account, Type: "AWS::S3::Bucket", ARN: "arn:aws:s3:::" + c.bucket})
		}
	case "dynamodb":
		if t := str(params["tableName"]); t != "" && account != "" {
			res = append(res, audit.EventResource{AccountID: account, Type: "AWS::DynamoDB::Table",
				ARN: "arn:aws:dynamodb:" + region + ":" + account + ":table/" + t})
		}
	case "lambda":
		// Invoke's data events name the function; no real Lambda
		// management record has resources (41 of 41 in testdata/real:
		// CreateFunction, GetFunction, UpdateFunctionCode...).
		if f := str(params["functionName"]); f != "" && account != "" && dataEvent("lambda", c.name, false) {
			arn := f
			if !strings.HasPrefix(f, "arn:") {
				arn = "arn:aws:lambda:" + region + ":" + account + ":function:" + f
			}
			res = append(res, audit.EventResource{AccountID: account, Type: "AWS::Lambda::Function", ARN: arn})
		}
	case "kms":
		k := str(params["keyId"])
		if !strings.HasPrefix(k, "arn:") {
			// An alias or key ID: the response names the key's ARN.
			var out struct{ KeyId string }
			if json.Unmarshal(resp, &out) == nil && out.KeyId != "" {
				k = out.KeyId // AWS answers the key's ARN
			}
			if k != "" && !strings.HasPrefix(k, "arn:") && !strings.HasPrefix(k, "alias/") && account != "" {
				k = "arn:aws:kms:" + region + ":" + account + ":key/" + k
			}
		}
		if strings.HasPrefix(k, "arn:") && strings.Contains(k, ":key/") {
			res = append(res, audit.EventResource{AccountID: account, Type: "AWS::KMS::Key", ARN: k})
		}
	case "ssm":
		// As AWS's SSM records: ARNs without a type.
		if account == "" {
			break
		}
		arn := func(kind, id string) audit.EventResource {
			return audit.EventResource{AccountID: account, ARN: "arn:aws:ssm:" + region + ":" + account + ":" + kind + id}
		}
		param := func(n string) {
			switch {
			case n == "":
			case strings.HasPrefix(n, "arn:"):
				res = append(res, audit.EventResource{AccountID: account, ARN: n})
			case strings.HasPrefix(n, "/"):
				res = append(res, arn("parameter", n))
			default:
				res = append(res, arn("parameter/", n))
			}
		}
		if strings.Contains(c.name, "Parameter") {
			param(str(params["name"]))
			if ns, ok := params["names"].([]any); ok {
				for _, n := range ns {
					param(str(n))
				}
			}
		}
		if a := str(params["associationId"]); a != "" {
			res = append(res, arn("association/", a))
		}
		if i := str(params["instanceId"]); i != "" {
			res = append(res, audit.EventResource{AccountID: account, ARN: "arn:aws:ec2:" + region + ":" + account + ":instance/" + i})
			if c.name == "PutInventory" {
				res = append(res, arn("managed-instance-inventory/", i))
			}
		}
	case "sts":
		if r := str(params["roleArn"]); r != "" {
			acct := account
			if p := strings.Split(r, ":"); len(p) == 6 {
				acct = p[4]
			}
			res = append(res, audit.EventResource{AccountID: acct, Type: "AWS::IAM::Role", ARN: r})
		}
	case "sns":
		if t := str(params["topicArn"]); t != "" {
			res = append(res, audit.EventResource{AccountID: account, Type: "AWS::SNS::Topic", ARN: t})
		}
	case "sqs":
		if u := str(params["queueUrl"]); u != "" && account != "" {
			if i := strings.LastIndexByte(u, '/'); i >= 0 {
				res = append(res, audit.EventResource{AccountID: account, Type: "AWS::SQS::Queue",
					ARN: "arn:aws:sqs:" + region + ":" + account + ":" + u[i+1:]})
			}
		}
	}
	return res
}
