package gateway

import (
	"strings"
)

// readOnly decides an operation's readOnly flag. The rule (docs/gateway.md):
// operations whose name starts with a reading verb (Get, List, Describe,
// Head, Lookup, Search, Query, Scan, BatchGet, Select, Simulate, Check,
// Test, Validate, Preview, Estimate, Filter) are read-only; so are KMS's
// cryptographic operations and STS's AssumeRole* and GetCallerIdentity, as
// AWS records them. STS's GetSessionToken and GetFederationToken issue
// credentials and are not (AWS records readOnly false).
func readOnly(service, op string) bool {
	switch service + ":" + op {
	case "sts:GetSessionToken", "sts:GetFederationToken", "secretsmanager:GetRandomPassword":
		return false
	case "sts:AssumeRole", "sts:AssumeRoleWithSAML", "sts:AssumeRoleWithWebIdentity", "sts:AssumeRoot",
		"sts:DecodeAuthorizationMessage",
		"kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt", "kms:Sign", "kms:Verify", "kms:GenerateMac", "kms:VerifyMac",
		"kms:GenerateRandom", "kms:DeriveSharedSecret",
		"sqs:ReceiveMessage", "logs:StartQuery", "logs:StopQuery":
		return true
	}
	if service == "kms" && strings.HasPrefix(op, "GenerateDataKey") {
		return true
	}
	for _, p := range []string{"Get", "List", "Describe", "Head", "Lookup", "Search", "Query", "Scan", "BatchGet",
		"Select", "Simulate", "Check", "Test", "Validate", "Preview", "Estimate", "Filter"} {
		if strings.HasPrefix(op, p) && (len(op) == len(p) || isUpper(op[len(p)])) {
			return true
		}
	}
	return false
}

func isUpper(b byte) bool { return b >= 'A' && b <= 'Z' }

// dataEvent reports whether AWS records op as a data event rather than a
// management event.
func dataEvent(service, op string, hasKey bool) bool {
	switch service {
	case "s3":
		if hasKey {
			return true
		}
		switch op {
		case "DeleteObjects", "ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads",
			"WriteGetObjectResponse":
			return true
		}
	case "lambda":
		return op == "Invoke" || op == "InvokeAsync" || op == "InvokeWithResponseStream"
	case "dynamodb":
		switch op {
		case "GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem", "BatchWriteItem", "Query", "Scan",
			"TransactGetItems", "TransactWriteItems", "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction":
			return true
		}
	case "sqs":
		switch op {
		case "SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch",
			"ChangeMessageVisibility", "ChangeMessageVisibilityBatch":
			return true
		}
	case "sns":
		return op == "Publish" || op == "PublishBatch"
	case "logs":
		switch op {
		case "GetLogEvents", "FilterLogEvents", "StartLiveTail":
			return true
		}
	case "secretsmanager":
		return false
	}
	return false
}

// eventName is the name AWS writes for op: Lambda's API-versioned
// operations carry their version (CreateFunction20150331,
// GetFunction20150331v2), as the real records show.
func eventName(service, op, uri string) string {
	if service != "lambda" || op == "" {
		return op
	}
	switch op {
	case "Invoke", "InvokeAsync", "InvokeWithResponseStream":
		return op
	case "AddPermission", "GetFunction", "GetFunctionConfiguration", "RemovePermission", "UpdateFunctionCode",
		"UpdateFunctionConfiguration", "GetPolicy", "DeleteFunctionConcurrency", "PutFunctionConcurrency":
		return op + "20150331v2"
	}
	if len(uri) > 11 && uri[0] == '/' && uri[5] == '-' && uri[8] == '-' {
		v := uri[1:5] + uri[6:8] + uri[9:11]
		if v <= "20170331" {
			return op + v
		}
	}
	return op
}

// region is the awsRegion of a record: global services record us-east-1.
func region(global bool, scoped string) string {
	if global || scoped == "" {
		return "us-east-1"
	}
	return scoped
}
