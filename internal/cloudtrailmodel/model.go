// Package cloudtrailmodel holds facts generated from the botocore models of
// the CloudTrail (2013-11-01, AWS JSON 1.1) and CloudTrail Data (2021-08-11,
// REST-JSON, PutAuditEvents) APIs: every operation with its route, whether
// it only reads, its input members with their documented constraints
// (min/max/enum/pattern, nested shapes included), its documented errors,
// and every error shape. botocore validates only required members and
// `min` on the client; the server validates the rest from these facts.
//
// The facts are in zz_generated.go, written by gen from the botocore
// installed on the machine (go generate ./internal/cloudtrailmodel) and
// committed. The package has no state: the tables are never modified, and
// the functions return copies of slices only where noted.
package cloudtrailmodel

import "sort"

//go:generate go run ./gen -o zz_generated.go

// Service is one API of the model.
type Service struct {
	// Name is the botocore service name ("cloudtrail", "cloudtrail-data").
	Name string
	// APIVersion is the model's API version ("2013-11-01").
	APIVersion string
	// Protocol is "json" (CloudTrail) or "rest-json" (CloudTrail Data).
	Protocol string
	// JSONVersion is the AWS JSON version ("1.1").
	JSONVersion string
	// TargetPrefix is the X-Amz-Target prefix of a "json" service
	// ("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"); empty for
	// "rest-json", whose operations are routed by Op.Method and Op.URI.
	TargetPrefix string
	// SigningName is the SigV4 service name ("cloudtrail", "cloudtrail-data").
	SigningName string
	// Operations holds every operation of the model by name.
	Operations map[string]Op
	// Shapes holds every shape reachable from an operation's input, by name.
	Shapes map[string]Shape
	// Errors lists every exception shape of the model, sorted.
	Errors []string
}

// Op is one operation.
type Op struct {
	Name string
	// Method and URI are the HTTP binding: "POST" and "/" for every
	// CloudTrail operation, "POST" and "/PutAuditEvents" for PutAuditEvents.
	Method, URI string
	// ReadOnly is cairn's rule, not a model field: operations whose names
	// start with Get, Describe, List, Lookup or Search only read. It matches
	// the readOnly field CloudTrail writes in the records of its own calls.
	ReadOnly bool
	// Errors are the error shapes the model documents for the operation, in
	// the model's order.
	Errors []string
	// InputShape names the input structure ("" when there is no input).
	InputShape string
	// Input are the members of the input structure, sorted by name.
	Input []Member
}

// Member is a member of a structure: its name, its shape, and that shape's
// type and documented constraints (copied here for convenience).
type Member struct {
	Name string
	// Shape names the member's shape; look nested members up with
	// Service.Shape.
	Shape string
	// Type is the shape's type: string, integer, long, float, double,
	// boolean, timestamp, blob, list, map or structure.
	Type     string
	Required bool
	// Min and Max are the documented bounds: length for strings, blobs,
	// lists and maps; value for numbers. Nil when not documented.
	Min, Max *float64
	// Enum lists the documented values of a string shape.
	Enum []string
	// Pattern is the documented regular expression (Java syntax, as the
	// model writes it).
	Pattern string
	// Location and LocationName bind a REST-JSON member outside the body
	// ("querystring", "channelArn"); empty for body members.
	Location, LocationName string
}

// Shape is a shape of the model with its documented constraints.
type Shape struct {
	Name, Type string
	Min, Max   *float64
	Enum       []string
	Pattern    string
	// Members are a structure's members, sorted by name.
	Members []Member
	// Member names a list's element shape.
	Member string
	// Key and Value name a map's key and value shapes.
	Key, Value string
}

func ptr(f float64) *float64 { return &f }

// CloudTrail returns the CloudTrail API (2013-11-01). The result is shared:
// callers must not modify it.
func CloudTrail() *Service { return &cloudTrail }

// CloudTrailData returns the CloudTrail Data API (2021-08-11,
// PutAuditEvents). The result is shared: callers must not modify it.
func CloudTrailData() *Service { return &cloudTrailData }

// Operation returns the CloudTrail operation called name.
func Operation(name string) (Op, bool) { return cloudTrail.Operation(name) }

// Operations returns every CloudTrail operation, sorted by name, in a new
// slice.
func Operations() []Op { return cloudTrail.OperationList() }

// Operation returns the operation of s called name.
func (s *Service) Operation(name string) (Op, bool) {
	op, ok := s.Operations[name]
	return op, ok
}

// OperationList returns every operation of s, sorted by name, in a new
// slice.
func (s *Service) OperationList() []Op {
	ops := make([]Op, 0, len(s.Operations))
	for _, op := range s.Operations {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name })
	return ops
}

// Shape returns the shape of s called name; only shapes reachable from an
// operation's input are present.
func (s *Service) Shape(name string) (Shape, bool) {
	sh, ok := s.Shapes[name]
	return sh, ok
}

// IsError reports whether code names an error shape of s.
func (s *Service) IsError(code string) bool {
	i := sort.SearchStrings(s.Errors, code)
	return i < len(s.Errors) && s.Errors[i] == code
}

// Member returns the input member called name of op.
func (op Op) Member(name string) (Member, bool) {
	return findMember(op.Input, name)
}

// MemberNamed returns the member called name of structure sh.
func (sh Shape) MemberNamed(name string) (Member, bool) {
	return findMember(sh.Members, name)
}

func findMember(ms []Member, name string) (Member, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}
