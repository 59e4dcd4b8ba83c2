package audit

import (
	"encoding/json"
	"time"
)

// TimeFormat is how CloudTrail writes times inside records: UTC, seconds, Z.
const TimeFormat = "2006-01-02T15:04:05Z"

// EventVersion is the eventVersion of records cairn writes.
const EventVersion = "1.11"

// Event is the CloudTrail record, every field up to eventVersion 1.11, in the
// order AWS writes them. Records cairn creates are marshalled from an Event
// once and kept as bytes; records received from elsewhere are never
// re-marshalled (their original bytes are kept in Record.Raw).
//
// requestParameters and responseElements are always present and null when
// empty, as AWS writes them; other optional members are omitted when unset.
type Event struct {
	EventVersion                 string          `json:"eventVersion"`
	UserIdentity                 *UserIdentity   `json:"userIdentity,omitempty"`
	EventTime                    string          `json:"eventTime"`
	EventSource                  string          `json:"eventSource,omitempty"`
	EventName                    string          `json:"eventName,omitempty"`
	AWSRegion                    string          `json:"awsRegion"`
	SourceIPAddress              string          `json:"sourceIPAddress,omitempty"`
	UserAgent                    string          `json:"userAgent,omitempty"`
	ErrorCode                    string          `json:"errorCode,omitempty"`
	ErrorMessage                 string          `json:"errorMessage,omitempty"`
	RequestParameters            json.RawMessage `json:"requestParameters"`
	ResponseElements             json.RawMessage `json:"responseElements"`
	AdditionalEventData          json.RawMessage `json:"additionalEventData,omitempty"`
	RequestID                    string          `json:"requestID,omitempty"`
	EventID                      string          `json:"eventID"`
	ReadOnly                     *bool           `json:"readOnly,omitempty"`
	Resources                    []EventResource `json:"resources,omitempty"`
	EventType                    string          `json:"eventType"`
	APIVersion                   string          `json:"apiVersion,omitempty"`
	ManagementEvent              *bool           `json:"managementEvent,omitempty"`
	RecipientAccountID           string          `json:"recipientAccountId,omitempty"`
	ServiceEventDetails          json.RawMessage `json:"serviceEventDetails,omitempty"`
	SharedEventID                string          `json:"sharedEventID,omitempty"`
	VPCEndpointID                string          `json:"vpcEndpointId,omitempty"`
	VPCEndpointAccountID         string          `json:"vpcEndpointAccountId,omitempty"`
	EventCategory                string          `json:"eventCategory"`
	Addendum                     *Addendum       `json:"addendum,omitempty"`
	InsightDetails               *InsightDetails `json:"insightDetails,omitempty"`
	TLSDetails                   *TLSDetails     `json:"tlsDetails,omitempty"`
	SessionCredentialFromConsole string          `json:"sessionCredentialFromConsole,omitempty"`
	EdgeDeviceDetails            json.RawMessage `json:"edgeDeviceDetails,omitempty"`
	EventContext                 json.RawMessage `json:"eventContext,omitempty"`
	Annotation                   string          `json:"annotation,omitempty"`
}

// UserIdentity is the record's userIdentity.
type UserIdentity struct {
	Type             string          `json:"type,omitempty"`
	PrincipalID      string          `json:"principalId,omitempty"`
	ARN              string          `json:"arn,omitempty"`
	AccountID        string          `json:"accountId,omitempty"`
	AccessKeyID      string          `json:"accessKeyId,omitempty"`
	UserName         string          `json:"userName,omitempty"`
	SessionContext   *SessionContext `json:"sessionContext,omitempty"`
	InvokedBy        string          `json:"invokedBy,omitempty"`
	IdentityProvider string          `json:"identityProvider,omitempty"`
	OnBehalfOf       *OnBehalfOf     `json:"onBehalfOf,omitempty"`
	CredentialID     string          `json:"credentialId,omitempty"`
	InScopeOf        *InScopeOf      `json:"inScopeOf,omitempty"`
}

// SessionContext describes temporary credentials.
type SessionContext struct {
	SessionIssuer       *SessionIssuer       `json:"sessionIssuer,omitempty"`
	WebIDFederationData *WebIDFederationData `json:"webIdFederationData,omitempty"`
	Attributes          *SessionAttributes   `json:"attributes,omitempty"`
	SourceIdentity      string               `json:"sourceIdentity,omitempty"`
	EC2RoleDelivery     string               `json:"ec2RoleDelivery,omitempty"`
	EC2IssuedInVPC      string               `json:"ec2IssuedInVpc,omitempty"`
	AssumedRoot         string               `json:"assumedRoot,omitempty"`
}

// SessionIssuer is the principal that issued temporary credentials.
type SessionIssuer struct {
	Type        string `json:"type,omitempty"`
	PrincipalID string `json:"principalId,omitempty"`
	ARN         string `json:"arn,omitempty"`
	AccountID   string `json:"accountId,omitempty"`
	UserName    string `json:"userName,omitempty"`
}

// WebIDFederationData describes web identity federation.
type WebIDFederationData struct {
	FederatedProvider string            `json:"federatedProvider,omitempty"`
	Attributes        map[string]string `json:"attributes,omitempty"`
}

// SessionAttributes are the session's creation date and MFA flag. AWS writes
// mfaAuthenticated as the string "true" or "false".
type SessionAttributes struct {
	CreationDate     string `json:"creationDate,omitempty"`
	MFAAuthenticated string `json:"mfaAuthenticated,omitempty"`
}

// OnBehalfOf names the IAM Identity Center user behind a call.
type OnBehalfOf struct {
	UserID           string `json:"userId,omitempty"`
	IdentityStoreARN string `json:"identityStoreArn,omitempty"`
}

// InScopeOf names the resource credentials were scoped to.
type InScopeOf struct {
	SourceARN           string `json:"sourceArn,omitempty"`
	SourceAccount       string `json:"sourceAccount,omitempty"`
	IssuerType          string `json:"issuerType,omitempty"`
	CredentialsIssuedTo string `json:"credentialsIssuedTo,omitempty"`
}

// EventResource is an item of the record's resources. AWS spells ARN in
// upper case.
type EventResource struct {
	AccountID string `json:"accountId,omitempty"`
	Type      string `json:"type,omitempty"`
	ARN       string `json:"ARN,omitempty"`
	ARNPrefix string `json:"ARNPrefix,omitempty"`
}

// TLSDetails describes the client's TLS connection.
type TLSDetails struct {
	TLSVersion               string `json:"tlsVersion,omitempty"`
	CipherSuite              string `json:"cipherSuite,omitempty"`
	ClientProvidedHostHeader string `json:"clientProvidedHostHeader,omitempty"`
	KeyExchange              string `json:"keyExchange,omitempty"`
}

// Addendum marks a delayed or corrected delivery.
type Addendum struct {
	Reason            string `json:"reason,omitempty"`
	UpdatedFields     string `json:"updatedFields,omitempty"`
	OriginalRequestID string `json:"originalRequestID,omitempty"`
	OriginalEventID   string `json:"originalEventID,omitempty"`
}

// InsightDetails is the body of an Insights record.
type InsightDetails struct {
	State          string          `json:"state"`
	EventSource    string          `json:"eventSource"`
	EventName      string          `json:"eventName"`
	InsightType    string          `json:"insightType"`
	ErrorCode      string          `json:"errorCode,omitempty"`
	InsightContext *InsightContext `json:"insightContext,omitempty"`
}

// InsightContext holds an Insight's statistics and attributions.
type InsightContext struct {
	Statistics   *InsightStatistics   `json:"statistics,omitempty"`
	Attributions []InsightAttribution `json:"attributions,omitempty"`
}

// InsightStatistics compares the baseline with the insight period.
type InsightStatistics struct {
	Baseline         InsightAverage `json:"baseline"`
	Insight          InsightAverage `json:"insight"`
	InsightDuration  *int           `json:"insightDuration,omitempty"`
	BaselineDuration *int           `json:"baselineDuration,omitempty"`
}

// InsightAverage is an average rate.
type InsightAverage struct {
	Average float64 `json:"average"`
}

// InsightAttribution lists the top contributors of one attribute.
type InsightAttribution struct {
	Attribute string         `json:"attribute"`
	Insight   []InsightValue `json:"insight"`
	Baseline  []InsightValue `json:"baseline"`
}

// InsightValue is one contributor and its average.
type InsightValue struct {
	Value   string  `json:"value"`
	Average float64 `json:"average"`
}

// FormatTime formats t as CloudTrail writes eventTime.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Marshal returns the record's JSON, compact, in AWS's field order.
func (e *Event) Marshal() ([]byte, error) {
	return json.Marshal(e)
}
