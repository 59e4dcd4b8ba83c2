package awsjson

import "github.com/cairn-audit/cairn/internal/audit"

// NewRequestID returns a random version-4 UUID in lower-case hex, the form
// of AWS request IDs: audit.NewID, which new code calls directly. It
// remains for the callers not yet moved (apiserver/server.go).
func NewRequestID() string { return audit.NewID() }
