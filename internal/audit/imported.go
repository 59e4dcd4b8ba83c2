package audit

import "fmt"

// ValidAccount reports whether s is an AWS account ID: 12 ASCII digits.
func ValidAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CheckImported returns nil when a record taken whole from outside (an
// import) names an account and a region cairn can keep: an account of 12
// digits (ValidAccount) and a region name (ValidRecordRegion). Else an
// error wrapping ErrInvalidRecord that quotes the value (clipped to 64
// bytes). The account partitions Event History and names log key folders;
// a responder imports any account's records, so no configured key vouches
// for it.
func CheckImported(r *Record) error {
	if !ValidAccount(r.Account) {
		a := r.Account
		if len(a) > 64 {
			a = a[:64] + "..."
		}
		return fmt.Errorf("%w: account %q (recipientAccountId, else userIdentity.accountId) is not a 12-digit account ID", ErrInvalidRecord, a)
	}
	return CheckRegion(r.Region)
}
