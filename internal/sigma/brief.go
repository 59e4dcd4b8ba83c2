package sigma

import (
	"encoding/json"
	"strings"
)

// briefPaths are the fields decodeBrief keeps.
var briefPaths = map[string]bool{
	"eventTime": true, "eventID": true, "eventName": true, "eventSource": true, "awsRegion": true,
	"recipientAccountId": true, "readOnly": true, "errorCode": true, "sourceIPAddress": true,
	"userIdentity.type": true, "userIdentity.arn": true, "userIdentity.invokedBy": true, "userIdentity.principalId": true,
	"userIdentity.accountId": true, "userIdentity.accessKeyId": true, "userIdentity.userName": true,
	"userIdentity.sessionContext.ec2RoleDelivery": true,
}

// brief reports whether the rule reads only fields decodeBrief keeps, so
// that it can run on a record decoded in brief.
func (r *Rule) brief() bool {
	for i := range r.sels {
		s := &r.sels[i]
		if len(s.keywords) > 0 {
			return false
		}
		for _, and := range s.alts {
			for j := range and {
				if !briefPaths[strings.Join(and[j].path, ".")] {
					return false
				}
				for _, ref := range and[j].refs {
					if !briefPaths[strings.Join(ref.path, ".")] {
						return false
					}
				}
			}
		}
	}
	return true
}

// brief is what stateful hunts and findings read of a record; decoding
// only it skips building the maps of requestParameters and
// responseElements.
type brief struct {
	EventTime          string `json:"eventTime"`
	EventID            string `json:"eventID"`
	EventName          string `json:"eventName"`
	EventSource        string `json:"eventSource"`
	AWSRegion          string `json:"awsRegion"`
	RecipientAccountID string `json:"recipientAccountId"`
	ReadOnly           any    `json:"readOnly"`
	ErrorCode          string `json:"errorCode"`
	SourceIPAddress    string `json:"sourceIPAddress"`
	UserIdentity       struct {
		Type           string `json:"type"`
		ARN            string `json:"arn"`
		InvokedBy      string `json:"invokedBy"`
		PrincipalID    string `json:"principalId"`
		AccountID      string `json:"accountId"`
		AccessKeyID    string `json:"accessKeyId"`
		UserName       string `json:"userName"`
		SessionContext struct {
			EC2RoleDelivery string `json:"ec2RoleDelivery"`
		} `json:"sessionContext"`
	} `json:"userIdentity"`
}

// decodeBrief decodes the fields Stateful documents into a Record.
func decodeBrief(data []byte) (Record, error) {
	var b brief
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, err
	}
	r := Record{}
	set := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set(r, "eventTime", b.EventTime)
	set(r, "eventID", b.EventID)
	set(r, "eventName", b.EventName)
	set(r, "eventSource", b.EventSource)
	set(r, "awsRegion", b.AWSRegion)
	set(r, "recipientAccountId", b.RecipientAccountID)
	set(r, "errorCode", b.ErrorCode)
	set(r, "sourceIPAddress", b.SourceIPAddress)
	if b.ReadOnly != nil {
		r["readOnly"] = b.ReadOnly
	}
	ui := map[string]any{}
	u := b.UserIdentity
	set(ui, "type", u.Type)
	set(ui, "arn", u.ARN)
	set(ui, "invokedBy", u.InvokedBy)
	set(ui, "principalId", u.PrincipalID)
	set(ui, "accountId", u.AccountID)
	set(ui, "accessKeyId", u.AccessKeyID)
	set(ui, "userName", u.UserName)
	if u.SessionContext.EC2RoleDelivery != "" {
		ui["sessionContext"] = map[string]any{"ec2RoleDelivery": u.SessionContext.EC2RoleDelivery}
	}
	r["userIdentity"] = ui
	return r, nil
}
