package audit

import "slices"

// Organization is an AWS Organizations organization as the config describes
// it (cairn has no Organizations API): its management account may create
// organization trails and organization event data stores, which collect the
// events of every member account too.
type Organization struct {
	ID                string
	ManagementAccount string
	Members           []string
}

// Has reports whether account belongs to o (its management account
// included). A nil o has no accounts.
func (o *Organization) Has(account string) bool {
	return o != nil && (account == o.ManagementAccount || slices.Contains(o.Members, account))
}

// CheckManagement is AWS's answer to a request that makes an organization
// resource (IsOrganizationTrail, OrganizationEnabled) from account:
// OrganizationsNotInUse when account is in no organization,
// NotOrganizationMasterAccount when it is a member but not the management
// account, nil for the management account.
func (o *Organization) CheckManagement(account string) error {
	switch {
	case !o.Has(account):
		return Errorf(CodeOrganizationsNotInUse, "This account is not a member of an organization.")
	case o.ManagementAccount != account:
		return Errorf(CodeNotOrganizationMasterAccount, "The request must be made from the management account of the organization.")
	}
	return nil
}
