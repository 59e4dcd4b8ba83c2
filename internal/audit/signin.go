package audit

import (
	"encoding/json"
	"time"
)

// SignIn is one console sign-in attempt, as the console saw it.
type SignIn struct {
	// Principal is the user whose access key ID was given; its Region is
	// the region the record goes to.
	Principal Principal
	// Time is when the attempt arrived; EventID the record's ID.
	Time    time.Time
	EventID string
	// SourceIP and UserAgent are the browser's; LoginTo the console's URL.
	SourceIP, UserAgent, LoginTo string
	// Success reports whether the secret was right.
	Success bool
	// TLS describes the browser's TLS connection; nil when it had none.
	TLS *CallTLS
}

// SignInRecord returns the CloudTrail record of a console sign-in, shaped
// as AWS writes ConsoleLogin (eventSource signin.amazonaws.com, eventType
// AwsConsoleSignIn, responseElements {"ConsoleLogin": "Success"|"Failure"},
// additionalEventData with MFAUsed "No"; a failure has errorMessage
// "Failed authentication" and no errorCode). The userIdentity names the
// IAM user without an access key, as AWS's does.
func SignInRecord(s SignIn) *Event {
	outcome := "Failure"
	if s.Success {
		outcome = "Success"
	}
	resp, _ := json.Marshal(map[string]string{"ConsoleLogin": outcome})
	extra, _ := json.Marshal(struct {
		LoginTo       string `json:"LoginTo"`
		MobileVersion string `json:"MobileVersion"`
		MFAUsed       string `json:"MFAUsed"`
	}{s.LoginTo, "No", "No"})
	id := s.Principal.Identity()
	id.AccessKeyID = ""
	c := Call{Identity: id, Account: s.Principal.AccountID, Time: s.Time, Source: "signin.amazonaws.com", Name: "ConsoleLogin",
		Region: s.Principal.Region, SourceIP: s.SourceIP, UserAgent: s.UserAgent, AdditionalEventData: extra,
		EventID: s.EventID, TLS: s.TLS}
	if !s.Success {
		c.ErrorMessage = "Failed authentication"
	}
	ev := CallRecord(c)
	ev.EventType = "AwsConsoleSignIn"
	ev.ResponseElements = resp // kept for a failure too (CallRecord keeps it only for a success)
	return ev
}
