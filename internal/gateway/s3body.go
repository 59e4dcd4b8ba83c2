package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxS3ConfigBody bounds the S3 configuration bodies read for
// requestParameters (tagging, policies, lifecycle rules...).
const maxS3ConfigBody = 64 << 10

// s3BodyQueries are the sub-resources whose request body is a bucket or
// object configuration (never object data), recorded as AWS does.
var s3BodyQueries = []string{"tagging", "versioning", "lifecycle", "policy", "cors", "encryption", "acl",
	"publicAccessBlock", "replication", "website", "logging", "notification", "delete", "ownershipControls",
	"intelligent-tiering", "analytics", "metrics", "inventory", "accelerate", "requestPayment",
	"object-lock", "legal-hold", "retention", "restore"}

// s3ConfigBody reports whether r is an S3 configuration call whose small
// body is read for requestParameters.
func s3ConfigBody(r *http.Request, q url.Values) bool {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		return false
	}
	if r.ContentLength < 0 || r.ContentLength > maxS3ConfigBody {
		return false
	}
	for _, k := range s3BodyQueries {
		if _, ok := q[k]; ok {
			return true
		}
	}
	return false
}

// s3BodyParams adds an S3 configuration body to params as AWS writes it:
// a policy as the JSON document under bucketPolicy; an XML body under its
// root element's name (Tagging, VersioningConfiguration, Delete...), with
// its xmlns, repeated elements as arrays and true/false and integers typed.
func s3BodyParams(op string, body []byte, params map[string]any) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return
	}
	if op == "PutBucketPolicy" {
		var doc map[string]any
		if json.Unmarshal(body, &doc) == nil {
			params["bucketPolicy"] = doc
		}
		return
	}
	if name, v, ok := xmlDoc(body); ok {
		params[name] = v
	}
}

// xmlDoc converts an XML document to the root's name and a JSON value.
func xmlDoc(body []byte) (string, any, bool) {
	top := parseXML(body, 32, 10000)
	if top == nil {
		return "", nil, false
	}
	var conv func(n *xmlNode, top bool) any
	conv = func(n *xmlNode, top bool) any {
		if len(n.kids) == 0 && (n.space == "" || !top) {
			return xmlScalar(strings.TrimSpace(n.text.String()))
		}
		m := map[string]any{}
		if top && n.space != "" {
			m["xmlns"] = n.space
		}
		for _, k := range n.kids {
			v := conv(k, false)
			switch prev := m[k.name].(type) {
			case nil:
				m[k.name] = v
			case []any:
				m[k.name] = append(prev, v)
			default:
				m[k.name] = []any{prev, v}
			}
		}
		return m
	}
	return top.name, conv(top, true), true
}

// xmlScalar types a text value as AWS's records do: true/false as
// booleans, plain integers as numbers, the rest as strings.
func xmlScalar(s string) any {
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	if s != "" && len(s) < 16 && (s == "0" || s[0] != '0') && strings.Trim(s, "0123456789") == "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}
