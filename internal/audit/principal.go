package audit

// Principal is a verified caller: the identity whose access key signed a
// request, and the region the signature was scoped to. Features scope
// everything they touch to its account (and, where CloudTrail does, its
// region); the edges that verify signatures (apiserver, gateway, console)
// build it.
type Principal struct {
	AccountID   string
	UserName    string
	ARN         string
	PrincipalID string
	AccessKeyID string
	// Region is the region of the request's SigV4 credential scope.
	Region string
	// Responder marks an incident responder's key (config: responder:
	// true; the key cairn generates without a config): it imports records
	// of any account, and its lookups cover every account. What it does
	// is still recorded in its own account.
	Responder bool
}
