package audit

import (
	"errors"
	"fmt"
)

// Error is a failure the client caused or must know about. Code is the
// CloudTrail error code without its "Exception" suffix (TrailNotFound,
// InvalidTimeRange); Message is safe to show the client. Err, when set, is
// the underlying cause, for the log only.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the Code of the *Error in err's chain, or "" if there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Code is a CloudTrail error code without its "Exception" suffix
// (TrailNotFound). Every code cairn's features raise is a constant below:
// TestErrorCodesAreConstants (internal/archtest) refuses a literal. The
// edge (apiserver) appends "Exception" and maps each to its HTTP status.
type Code string

// The codes, in alphabetical order.
const (
	CodeAccountHasOngoingImport            Code = "AccountHasOngoingImport"
	CodeChannelARNInvalid                  Code = "ChannelARNInvalid"
	CodeChannelAlreadyExists               Code = "ChannelAlreadyExists"
	CodeChannelExistsForEDS                Code = "ChannelExistsForEDS"
	CodeChannelInsufficientPermission      Code = "ChannelInsufficientPermission"
	CodeChannelMaxLimitExceeded            Code = "ChannelMaxLimitExceeded"
	CodeChannelNotFound                    Code = "ChannelNotFound"
	CodeCloudTrailARNInvalid               Code = "CloudTrailARNInvalid"
	CodeEventDataStoreARNInvalid           Code = "EventDataStoreARNInvalid"
	CodeEventDataStoreAlreadyExists        Code = "EventDataStoreAlreadyExists"
	CodeEventDataStoreMaxLimitExceeded     Code = "EventDataStoreMaxLimitExceeded"
	CodeEventDataStoreNotFound             Code = "EventDataStoreNotFound"
	CodeEventDataStoreTerminationProtected Code = "EventDataStoreTerminationProtected"
	CodeImportNotFound                     Code = "ImportNotFound"
	CodeInactiveEventDataStore             Code = "InactiveEventDataStore"
	CodeInactiveQuery                      Code = "InactiveQuery"
	CodeInsightNotEnabled                  Code = "InsightNotEnabled"
	CodeInvalidChannelARN                  Code = "InvalidChannelARN"
	CodeInvalidDateRange                   Code = "InvalidDateRange"
	CodeInvalidEventCategory               Code = "InvalidEventCategory"
	CodeInvalidEventDataStoreCategory      Code = "InvalidEventDataStoreCategory"
	CodeInvalidEventDataStoreStatus        Code = "InvalidEventDataStoreStatus"
	CodeInvalidEventSelectors              Code = "InvalidEventSelectors"
	CodeInvalidHomeRegion                  Code = "InvalidHomeRegion"
	CodeInvalidImportSource                Code = "InvalidImportSource"
	CodeInvalidInsightSelectors            Code = "InvalidInsightSelectors"
	CodeInvalidKmsKeyId                    Code = "InvalidKmsKeyId"
	CodeInvalidLookupAttributes            Code = "InvalidLookupAttributes"
	CodeInvalidMaxResults                  Code = "InvalidMaxResults"
	CodeInvalidNextToken                   Code = "InvalidNextToken"
	CodeInvalidParameter                   Code = "InvalidParameter"
	CodeInvalidParameterCombination        Code = "InvalidParameterCombination"
	CodeInvalidQueryStatement              Code = "InvalidQueryStatement"
	CodeInvalidQueryStatus                 Code = "InvalidQueryStatus"
	CodeInvalidS3BucketName                Code = "InvalidS3BucketName"
	CodeInvalidS3Prefix                    Code = "InvalidS3Prefix"
	CodeInvalidSource                      Code = "InvalidSource"
	CodeInvalidTagParameter                Code = "InvalidTagParameter"
	CodeInvalidTimeRange                   Code = "InvalidTimeRange"
	CodeInvalidToken                       Code = "InvalidToken"
	CodeInvalidTrailName                   Code = "InvalidTrailName"
	CodeMaxConcurrentQueries               Code = "MaxConcurrentQueries"
	CodeMaximumNumberOfTrailsExceeded      Code = "MaximumNumberOfTrailsExceeded"
	CodeNotOrganizationMasterAccount       Code = "NotOrganizationMasterAccount"
	CodeOperationNotPermitted              Code = "OperationNotPermitted"
	CodeOrganizationsNotInUse              Code = "OrganizationsNotInUse"
	CodeQueryIdNotFound                    Code = "QueryIdNotFound"
	CodeResourceNotFound                   Code = "ResourceNotFound"
	CodeResourceTypeNotSupported           Code = "ResourceTypeNotSupported"
	CodeS3BucketDoesNotExist               Code = "S3BucketDoesNotExist"
	CodeServiceUnavailable                 Code = "ServiceUnavailable"
	CodeTagsLimitExceeded                  Code = "TagsLimitExceeded"
	CodeThrottling                         Code = "Throttling"
	CodeTrailAlreadyExists                 Code = "TrailAlreadyExists"
	CodeTrailNotFound                      Code = "TrailNotFound"
	CodeTrailNotProvided                   Code = "TrailNotProvided"
	CodeUnsupportedOperation               Code = "UnsupportedOperation"
)

// ErrInvalidRecord is wrapped by Extract errors: the bytes are not a record
// cairn can index.
var ErrInvalidRecord = errors.New("invalid record")
