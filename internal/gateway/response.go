package gateway

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/gateway/routes"
)

// awsTime is how AWS's records write the timestamps of responseElements
// and of JSON request members (Java's medium date-time, UTC): "Nov 30,
// 2024, 8:43:17 PM" (STS GetFederationToken, Secrets Manager DeleteSecret,
// SSM in testdata/real; older records lack the comma after the year).
const awsTime = "Jan 2, 2006, 3:04:05 PM"

// responses says, per service and operation, whether AWS records the
// response of a successful call where the readOnly rule would say
// otherwise: AWS records what STS issues (all 114 successful AssumeRole
// records of testdata/real carry credentials and assumedRoleUser;
// GetFederationToken its credentials and federatedUser), though
// AssumeRole* are read-only. Operations not listed: the responses of
// writes are recorded, those of reads are not.
var responses = map[string]map[string]bool{
	"sts": {
		"AssumeRole": true, "AssumeRoleWithSAML": true, "AssumeRoleWithWebIdentity": true,
		"GetSessionToken": true, "GetFederationToken": true,
		"GetCallerIdentity": false, "GetAccessKeyInfo": false, "DecodeAuthorizationMessage": false,
	},
}

// responseMembers are operations whose records keep only some members of
// the response, by response member name and the name the record gives it:
// Secrets Manager's CreateSecret and PutSecretValue records carry the
// secret's "arn" alone (testdata/real: 20 and 20 of 20), though the
// response also has Name and VersionId (its DeleteSecret records keep
// every member, ARN as "aRN", as the default conversion writes it).
var responseMembers = map[string]map[string]map[string]string{
	"secretsmanager": {
		"CreateSecret":   {"ARN": "arn"},
		"PutSecretValue": {"ARN": "arn"},
	},
}

// recordsResponse reports whether a successful call's response goes into
// its record's responseElements.
func recordsResponse(service, name string, readOnly bool) bool {
	if v, ok := responses[service][name]; ok {
		return v
	}
	return !readOnly
}

// responseElements converts a captured response body to responseElements
// as AWS writes them for the service's protocol: JSON members lower-camel
// at every depth (map keys as sent), query XML's <XResult>, EC2's response
// element with its sets as {"items": [...]}; values typed and timestamps
// formatted by the model's kinds (routes.Service.Types); secrets left out
// or hidden as AWS does. S3: the object's encryption headers.
func responseElements(c call, st *state, sens map[string]bool) json.RawMessage {
	if c.svc == nil {
		return nil
	}
	if c.svc.Name == "s3" {
		return s3ResponseElements(c.name, st.respHeader)
	}
	b := bytes.TrimSpace(st.captured.Bytes())
	if len(b) == 0 {
		return nil
	}
	var out any
	switch {
	case b[0] == '{':
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v map[string]any
		if d.Decode(&v) != nil || len(v) == 0 {
			return nil
		}
		if keep, ok := responseMembers[c.svc.Name][c.name]; ok {
			kept := map[string]any{}
			for k, as := range keep {
				if x, ok := v[k]; ok {
					kept[as] = x
				}
			}
			return marshalObject(kept)
		}
		shape := ""
		if c.op != nil {
			shape = c.op.Output
		}
		out = typeJSON(camelJSON(v, shape, c.svc.Shapes, 0), "", c.svc.Types, 0)
	case b[0] == '<':
		root := parseXML(b, 64, math.MaxInt)
		if root == nil {
			return nil
		}
		if c.svc.Protocol == "ec2" && ec2RawResponses[c.name] {
			out = ec2RawResponse(root)
		} else if c.svc.Protocol == "ec2" {
			m, _ := ec2Response(root, c.svc.Types).(map[string]any)
			ec2Rename(m, c.name)
			out = m
		} else {
			out = queryResponse(root, c.svc.Types)
		}
	}
	redact(out, sens)
	return marshalObject(out)
}

// marshalObject is v as JSON when it is a non-empty object, else nil.
func marshalObject(v any) json.RawMessage {
	if m, ok := v.(map[string]any); !ok || len(m) == 0 {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return raw
}

// kind is the model's kind of the member name under parent.
func kind(types map[string]routes.Kind, parent, name string) routes.Kind {
	if k, ok := types[parent+"."+name]; ok {
		return k
	}
	return types[name]
}

// typeJSON formats the timestamps of a JSON response (epoch seconds) as
// AWS records them.
func typeJSON(v any, parent string, types map[string]routes.Kind, depth int) any {
	if depth > 64 {
		return v
	}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if n, ok := x.(json.Number); ok && kind(types, parent, k) == routes.Time {
				if f, err := n.Float64(); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) < 1e12 {
					sec, frac := math.Modf(f)
					t[k] = time.Unix(int64(sec), int64(frac*1e9)).UTC().Format(awsTime)
				}
				continue
			}
			t[k] = typeJSON(x, k, types, depth+1)
		}
	case []any:
		for i := range t {
			t[i] = typeJSON(t[i], parent, types, depth+1)
		}
	}
	return v
}

// typeParams types the string values of query and EC2 requestParameters
// whose model members are numbers or booleans (maxCount: 1,
// passwordResetRequired: false), as AWS records them; EC2's
// {"items": [...]} wrappers are not parents.
func typeParams(v any, parent string, types map[string]routes.Kind, depth int) {
	if depth > 64 || len(types) == 0 {
		return
	}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if s, ok := x.(string); ok {
				switch kind(types, parent, k) {
				case routes.Number:
					if jsonNumber(s) {
						t[k] = json.Number(s)
					}
				case routes.Bool:
					if s == "true" || s == "false" {
						t[k] = s == "true"
					}
				}
				continue
			}
			next := k
			if k == "items" {
				next = parent
			}
			typeParams(x, next, types, depth+1)
		}
	case []any:
		for _, x := range t {
			typeParams(x, parent, types, depth+1)
		}
	}
}

// jsonNumber reports whether s is a number as JSON writes it (not NaN,
// 0x1p-2, +5 or 007, which Go's parsers accept, nor "0 ", which
// json.Unmarshal takes with its space and json.Number cannot write), of
// at most 64 bytes.
func jsonNumber(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') || s[len(s)-1] < '0' || s[len(s)-1] > '9' {
		return false
	}
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

// xmlNode is an element of an XML response.
type xmlNode struct {
	name  string
	space string // the element's namespace (xmlns)
	kids  []*xmlNode
	text  strings.Builder
}

// parseXML reads an XML document (a response, an S3 configuration body)
// into its root element; nil when it is not one well-formed element, nests
// deeper than maxDepth or has an element with more than maxKids children.
func parseXML(body []byte, maxDepth, maxKids int) *xmlNode {
	d := xml.NewDecoder(bytes.NewReader(body))
	doc := &xmlNode{}
	stack := []*xmlNode{doc}
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &xmlNode{name: t.Name.Local, space: t.Name.Space}
			p := stack[len(stack)-1]
			if len(p.kids) >= maxKids {
				return nil
			}
			p.kids = append(p.kids, n)
			stack = append(stack, n)
			if len(stack) > maxDepth {
				return nil
			}
		case xml.EndElement:
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			stack[len(stack)-1].text.Write(t)
		}
	}
	if len(doc.kids) != 1 {
		return nil
	}
	return doc.kids[0]
}

// scalar types an XML leaf by the model's kind of its member: numbers and
// booleans as JSON's; timestamps through ts.
func scalar(text string, k routes.Kind, ts func(time.Time) any) any {
	switch k {
	case routes.Number:
		if jsonNumber(text) {
			return json.Number(text)
		}
	case routes.Bool:
		if b, err := strconv.ParseBool(text); err == nil {
			return b
		}
	case routes.Time:
		if t, err := time.Parse(time.RFC3339Nano, text); err == nil {
			return ts(t.UTC())
		}
	}
	return text
}

// queryResponse converts a query service's XML response (IAM, STS, SQS,
// SNS): the children of <XResult> (or of the root) with lower-camel names,
// <member> lists as arrays, values typed by the model, timestamps as AWS
// writes them; requestId and ResponseMetadata left out, as AWS does.
func queryResponse(root *xmlNode, types map[string]routes.Kind) any {
	ts := func(t time.Time) any { return t.Format(awsTime) }
	var conv func(n *xmlNode, parent string) any
	conv = func(n *xmlNode, parent string) any {
		name := lowerFirst(n.name)
		k := kind(types, parent, name)
		if len(n.kids) == 0 {
			if k == routes.List {
				return []any{}
			}
			return scalar(strings.TrimSpace(n.text.String()), k, ts)
		}
		if n.kids[0].name == "member" || n.kids[0].name == "entry" {
			arr := make([]any, 0, len(n.kids))
			for _, c := range n.kids {
				arr = append(arr, conv(c, name))
			}
			return arr
		}
		m := map[string]any{}
		for _, c := range n.kids {
			m[lowerFirst(c.name)] = conv(c, name)
		}
		return m
	}
	res := root
	for _, k := range root.kids {
		if strings.HasSuffix(k.name, "Result") {
			res = k
		}
	}
	if len(res.kids) == 0 || res.kids[0].name == "member" {
		return nil
	}
	m := map[string]any{}
	for _, c := range res.kids { // the output's members: parent ""
		m[lowerFirst(c.name)] = conv(c, "")
	}
	delete(m, "requestId")
	delete(m, "responseMetadata")
	return m
}

// ec2Response converts an EC2 XML response as CloudTrail writes it (the
// real EC2 records of testdata/real): the response element's children with
// requestId kept, <return> as the boolean "_return", sets (<xSet><item>)
// as {"items": [...]} and empty sets as {}, numbers and booleans typed by
// the model, timestamps as epoch milliseconds.
func ec2Response(root *xmlNode, types map[string]routes.Kind) any {
	ts := func(t time.Time) any { return t.UnixMilli() }
	var conv func(n *xmlNode, parent string) any
	var members func(n *xmlNode, name string) map[string]any
	conv = func(n *xmlNode, parent string) any {
		name := lowerFirst(n.name)
		k := kind(types, parent, name)
		if len(n.kids) == 0 {
			if k == routes.List {
				return map[string]any{}
			}
			return scalar(strings.TrimSpace(n.text.String()), k, ts)
		}
		if n.kids[0].name == "item" {
			arr := make([]any, 0, len(n.kids))
			for _, c := range n.kids {
				arr = append(arr, conv(c, name))
			}
			return map[string]any{"items": arr}
		}
		return members(n, name)
	}
	members = func(n *xmlNode, name string) map[string]any {
		m := map[string]any{}
		for _, c := range n.kids {
			cn := lowerFirst(c.name)
			if cn == "return" && len(c.kids) == 0 {
				m["_return"] = scalar(strings.TrimSpace(c.text.String()), routes.Bool, ts)
				continue
			}
			m[cn] = conv(c, name)
		}
		return m
	}
	if len(root.kids) == 0 || root.kids[0].name == "item" {
		return nil
	}
	return members(root, "") // the output's members: parent ""
}

// ec2Names are the top-level request and response members EC2's records
// name otherwise than its API, by operation (EC2's own names, which no
// model gives: a table of those seen in real records).
var ec2Names = map[string]map[string]string{
	"CreateVolume": {"availabilityZone": "zone"}, // invictus-ir-aws_dataset …T1220Z_WMiHxZgr5Hdd6UDc
}

// ec2Rename renames the top-level members of m as ec2Names says for op.
func ec2Rename(m map[string]any, op string) {
	for from, to := range ec2Names[op] {
		if x, ok := m[from]; ok {
			delete(m, from)
			m[to] = x
		}
	}
}

// ec2RawResponses are the EC2 operations whose records carry the response
// document itself rather than the classic shape (testdata/real:
// CreateNatGateway, DeleteNatGateway, CreateFlowLogs, DeleteFlowLogs in
// invictus-ir-aws_dataset, EnableSerialConsoleAccess in
// datadog-stratus-red-team, CreateLaunchTemplate in traildiscover): see
// ec2RawResponse. A table of those seen; AWS does not say which.
var ec2RawResponses = map[string]bool{
	"CreateNatGateway": true, "DeleteNatGateway": true, "CreateFlowLogs": true, "DeleteFlowLogs": true,
	"EnableSerialConsoleAccess": true, "DisableSerialConsoleAccess": true, "CreateLaunchTemplate": true,
}

// ec2RawResponse converts an EC2 response document as AWS records those
// operations: {"<Op>Response": {"xmlns": ..., members...}}, element names
// as they are, repeated elements as arrays and single ones as their
// value (a set's one <item> is an object, not an array), empty elements
// "", and leaf text true/false and integers as JSON's booleans and
// numbers (a tag's value "true" included), by the text, not the model.
func ec2RawResponse(root *xmlNode) any {
	var conv func(n *xmlNode) any
	conv = func(n *xmlNode) any {
		if len(n.kids) == 0 {
			t := strings.TrimSpace(n.text.String())
			if b, err := strconv.ParseBool(t); err == nil && (t == "true" || t == "false") {
				return b
			}
			if _, err := strconv.ParseInt(t, 10, 64); err == nil && jsonNumber(t) {
				return json.Number(t)
			}
			return t
		}
		m := map[string]any{}
		for _, c := range n.kids {
			v := conv(c)
			switch prev := m[c.name].(type) {
			case nil:
				m[c.name] = v
			case []any:
				m[c.name] = append(prev, v)
			default:
				m[c.name] = []any{prev, v}
			}
		}
		return m
	}
	body, _ := conv(root).(map[string]any)
	if body == nil {
		return nil
	}
	if root.space != "" {
		body["xmlns"] = root.space
	}
	return map[string]any{root.name: body}
}

// s3Encryption are the response headers of S3 object writes that AWS
// records in responseElements (server-side encryption and version).
var s3Encryption = []string{
	"x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
	"x-amz-server-side-encryption-context", "x-amz-server-side-encryption-bucket-key-enabled",
	"x-amz-server-side-encryption-customer-algorithm", "x-amz-version-id",
}

// s3ObjectWrites are the S3 operations that write an object: their records
// carry its encryption in responseElements.
var s3ObjectWrites = map[string]bool{
	"PutObject": true, "CopyObject": true, "CreateMultipartUpload": true, "UploadPart": true,
	"UploadPartCopy": true, "CompleteMultipartUpload": true,
}

// s3ResponseElements: S3 records' responseElements are null but for object
// writes, which carry the object's server-side encryption headers (and
// version) as the response gave them.
func s3ResponseElements(name string, h http.Header) json.RawMessage {
	if !s3ObjectWrites[name] {
		return nil
	}
	out := map[string]any{}
	for _, k := range s3Encryption {
		if v := h.Get(k); v != "" {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	raw, _ := json.Marshal(out)
	return raw
}
