// Package cloudtrailmodel holds facts generated from the botocore models of
// the CloudTrail (2013-11-01) and CloudTrail Data (2021-08-11) APIs: every
// operation, its route, input members with their constraints, and errors.
// botocore validates only required members and `min` on the client; the
// server validates the rest from these facts.
package cloudtrailmodel

//go:generate go run ./gen -o zz_generated.go

// Service is one API of the model.
type Service struct {
	Name, APIVersion, Protocol, TargetPrefix string
	Operations                               map[string]Op
	// Errors lists every exception shape of the service.
	Errors []string
}

// Op is one operation.
type Op struct {
	Name        string
	Method, URI string
	// ReadOnly is cairn's rule for the readOnly field of the operation's
	// records: Get, Describe, List, Lookup and Search operations only read.
	ReadOnly bool
	// Errors are the error shapes the model documents for the operation.
	Errors []string
	Input  []Member
}

// Member is an input member and its documented constraints.
type Member struct {
	Name     string
	Type     string
	Required bool
	Min, Max *float64
	Enum     []string
}

func ptr(f float64) *float64 { return &f }

// CloudTrail returns the CloudTrail API.
func CloudTrail() *Service { return &cloudTrail }

// CloudTrailData returns the CloudTrail Data API (PutAuditEvents).
func CloudTrailData() *Service { return &cloudTrailData }

// Operation returns the CloudTrail operation called name.
func Operation(name string) (Op, bool) {
	op, ok := cloudTrail.Operations[name]
	return op, ok
}

// Member returns the input member called name of op.
func (op Op) Member(name string) (Member, bool) {
	for _, m := range op.Input {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}
