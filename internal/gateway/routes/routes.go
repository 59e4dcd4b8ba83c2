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
	// Sensitive are the input and output members the model marks
	// sensitive, as parent.name in lower camel (".value": a top-level
	// member; "credentials.secretAccessKey"; parent is the name of the
	// member holding them).
	Sensitive []string
	// Shapes of JSON services under which a map lies, by name: their
	// keys are recorded as sent, not lower-camel-cased.
	Shapes map[string]Shape
	// Types are the kinds of the output members whose names have one
	// non-string kind throughout the model (by the name records give
	// them: lower camel, EC2's XML element names), for typing the values
	// of XML responses and formatting timestamps as AWS records them.
	Types map[string]Kind
	// InTypes are the same for the input members of query and EC2
	// services, numbers and booleans only: their values arrive as
	// strings and AWS records them typed (maxCount: 1).
	InTypes map[string]Kind

	byName map[string]*Operation
	rest   []*restRoute
}

// Operation is one operation of a service.
type Operation struct {
	Name        string
	Method      string
	URI         string // request URI template: /{Bucket}/{Key+}?tagging
	Members     []Member
	Input       string // JSON services: the input shape, when a map lies under it (Service.Shapes)
	Output      string // JSON services: the output shape, when a map lies under it (Service.Shapes)
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

// Kind is the kind of a model member's values.
type Kind uint8

// Kinds of members; strings, structures, maps and blobs are not listed.
const (
	Number Kind = iota + 1 // integer, long, float, double
	Bool
	Time   // timestamp
	List   // a list (EC2's <xSet><item>, query's <member>)
	String // a string where the model says otherwise (AWS's records do)
)

// Shape is a JSON input or output shape under which a map lies: a map (its keys are
// data, its values of shape Elem), a list (elements of shape Elem) or a
// structure (Members: the members of such shapes, by model name). Shapes
// under which no map lies are not listed ("").
type Shape struct {
	Map     bool
	Elem    string
	Members map[string]string
}
