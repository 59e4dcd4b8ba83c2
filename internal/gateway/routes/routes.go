// Package routes holds the gateway's route tables, generated from botocore's
// service models (gen/), and the classifier that names the operation of a
// request: X-Amz-Target for JSON services, Action for query services, and
// method plus URI template for REST services (S3 with its sub-resources,
// path-style and virtual-host buckets).
package routes

//go:generate go run ./gen -o zz_generated.go

// Service is one service's model, as the classifier needs it.
type Service struct {
	Name           string // signing name: s3, iam, dynamodb...
	Protocol       string // json, query, ec2, rest-json, rest-xml
	EndpointPrefix string
	TargetPrefix   string // X-Amz-Target prefix of JSON services
	APIVersion     string
	Global         bool // a global endpoint: records carry us-east-1
	Operations     []Operation
	Sensitive      []string // input member names (lower camel) the model marks sensitive

	byName map[string]*Operation
	rest   []*restRoute
}

// Operation is one operation of a service.
type Operation struct {
	Name        string
	Method      string
	URI         string // request URI template: /{Bucket}/{Key+}?tagging
	Members     []Member
	Payload     string // the input member that is the body, if any
	PayloadBlob bool   // the payload is object bytes: never read
}

// Member is an input member bound to the URI, query string or a header.
type Member struct {
	Name         string
	Location     string // uri, querystring, header
	LocationName string
	Required     bool
}
