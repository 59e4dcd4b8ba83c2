package gateway

import (
	"bytes"
	"encoding/xml"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// identity is the userIdentity of a call and the account that receives its
// record: IAMUser for keys Principals knows, AssumedRole (or IAMUser with
// a session) for credentials STS issued through the gateway, Unknown with
// the access key otherwise (received by DefaultAccount).
func (g *Gateway) identity(sc scope) (*audit.UserIdentity, string) {
	if sc.accessKey == "" {
		return &audit.UserIdentity{Type: "Unknown"}, g.cfg.DefaultAccount
	}
	if g.cfg.Principals != nil {
		if p, ok := g.cfg.Principals.Principal(sc.accessKey); ok {
			return p.Identity(), p.AccountID
		}
	}
	if s, ok := g.sessions.get(sc.accessKey); ok {
		attrs := &audit.SessionAttributes{CreationDate: s.created, MFAAuthenticated: "false"}
		if s.roleARN == "" { // GetSessionToken: the user, with a session
			return &audit.UserIdentity{Type: "IAMUser", PrincipalID: s.issuer.PrincipalID, ARN: s.issuer.ARN,
				AccountID: s.account, AccessKeyID: sc.accessKey, UserName: s.issuer.UserName,
				SessionContext: &audit.SessionContext{Attributes: attrs}}, s.account
		}
		if s.federated {
			return &audit.UserIdentity{Type: "FederatedUser", PrincipalID: s.assumedID, ARN: s.arn, AccountID: s.account,
				AccessKeyID: sc.accessKey, SessionContext: &audit.SessionContext{Attributes: attrs,
					SessionIssuer: &audit.SessionIssuer{Type: "IAMUser", PrincipalID: s.issuer.PrincipalID,
						ARN: s.issuer.ARN, AccountID: s.account, UserName: s.issuer.UserName}}}, s.account
		}
		roleID, _, _ := strings.Cut(s.assumedID, ":")
		roleName := s.roleARN[strings.LastIndexByte(s.roleARN, '/')+1:]
		return &audit.UserIdentity{Type: "AssumedRole", PrincipalID: s.assumedID, ARN: s.arn, AccountID: s.account,
			AccessKeyID: sc.accessKey, SessionContext: &audit.SessionContext{Attributes: attrs,
				SessionIssuer: &audit.SessionIssuer{Type: "Role", PrincipalID: roleID, ARN: s.roleARN,
					AccountID: s.account, UserName: roleName}}}, s.account
	}
	return &audit.UserIdentity{Type: "Unknown", AccessKeyID: sc.accessKey}, g.cfg.DefaultAccount
}

// learnSession remembers the credentials an STS response issued, so that
// later calls with them are recorded as the session.
func (g *Gateway) learnSession(sc scope, op string, body []byte, ev *audit.Event) {
	switch op {
	case "AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "GetSessionToken", "GetFederationToken":
	default:
		return
	}
	var resp struct {
		Result struct {
			Credentials struct {
				AccessKeyID string `xml:"AccessKeyId"`
				Expiration  string `xml:"Expiration"`
			} `xml:"Credentials"`
			AssumedRoleUser struct {
				AssumedRoleID string `xml:"AssumedRoleId"`
				Arn           string `xml:"Arn"`
			} `xml:"AssumedRoleUser"`
			FederatedUser struct {
				ID  string `xml:"FederatedUserId"`
				Arn string `xml:"Arn"`
			} `xml:"FederatedUser"`
		} `xml:",any"`
	}
	if xml.NewDecoder(bytes.NewReader(body)).Decode(&resp) != nil || resp.Result.Credentials.AccessKeyID == "" {
		return
	}
	s := &session{created: ev.EventTime, account: ev.RecipientAccountID, expires: g.cfg.Now().Add(DefaultSessionLifetime)}
	if t, err := time.Parse(time.RFC3339, strings.TrimSpace(resp.Result.Credentials.Expiration)); err == nil {
		s.expires = t
	}
	if ev.UserIdentity != nil && ev.UserIdentity.Type == "IAMUser" {
		s.issuer = audit.Principal{PrincipalID: ev.UserIdentity.PrincipalID, ARN: ev.UserIdentity.ARN,
			AccountID: ev.UserIdentity.AccountID, UserName: ev.UserIdentity.UserName}
	}
	switch {
	case resp.Result.AssumedRoleUser.Arn != "":
		a := resp.Result.AssumedRoleUser
		s.assumedID, s.arn = a.AssumedRoleID, a.Arn
		// arn:aws:sts::acct:assumed-role/name/session -> arn:aws:iam::acct:role/name
		p := strings.Split(a.Arn, ":")
		if len(p) == 6 {
			if acct := p[4]; acct != "" {
				s.account = acct
			}
			rs := strings.Split(p[5], "/")
			if len(rs) >= 2 {
				s.roleARN = "arn:aws:iam::" + s.account + ":role/" + rs[1]
			}
		}
	case resp.Result.FederatedUser.Arn != "":
		s.federated = true
		s.assumedID, s.arn = resp.Result.FederatedUser.ID, resp.Result.FederatedUser.Arn
		s.roleARN = s.arn
	}
	_ = sc
	g.sessions.put(resp.Result.Credentials.AccessKeyID, s)
}
