package apiserver

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/cloudtrailmodel"
)

// enumCodes names, by input member, the error the model documents for a
// value outside the member's enum; the first of them the operation models
// is answered, else InvalidParameterException, else (operations that model
// neither: dashboards) OperationNotPermitted or UnsupportedOperation.
var enumCodes = map[string][]audit.Code{
	"QueryStatus":     {audit.CodeInvalidQueryStatus},
	"EventCategory":   {audit.CodeInvalidEventCategory},
	"AttributeKey":    {audit.CodeInvalidLookupAttributes},
	"ReadWriteType":   {audit.CodeInvalidEventSelectors},
	"InsightType":     {audit.CodeInvalidInsightSelectors},
	"EventCategories": {audit.CodeInvalidInsightSelectors},
}

// enumExtensions are the values cairn accepts beyond a model enum, by
// shape: LookupEvents' scope attributes (docs/compatibility.md).
var enumExtensions = map[string][]string{
	"LookupAttributeKey": {string(audit.AttrAccountID), string(audit.AttrAWSRegion)},
}

// modeledCode returns the first of codes that op's model documents, then
// InvalidParameter, then OperationNotPermitted if it documents them, else
// "" (none fits).
func modeledCode(op cloudtrailmodel.Op, codes ...audit.Code) audit.Code {
	for _, c := range slices.Concat(codes, []audit.Code{audit.CodeInvalidParameter, audit.CodeOperationNotPermitted}) {
		if slices.Contains(op.Errors, string(c)+"Exception") {
			return c
		}
	}
	return ""
}

// checkEnums refuses a request of op whose body gives a member of an enum
// shape (at any depth: ListQueries' QueryStatus, ListImports'
// ImportStatus, CreateEventDataStore's BillingMode, PutEventSelectors'
// EventSelectors[].ReadWriteType...) a value outside the model's enum, with
// the error op models for it (enumCodes). It checks only string values;
// a body that is not JSON, or a member of the wrong type, is left to the
// handler's decoding (SerializationException).
func checkEnums(opName string, body []byte) error {
	op, ok := cloudtrailmodel.Operation(opName)
	if !ok || op.InputShape == "" || len(body) == 0 {
		return nil
	}
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	return checkMembers(op, op.Input, v, "")
}

func checkMembers(op cloudtrailmodel.Op, members []cloudtrailmodel.Member, v map[string]any, path string) error {
	ct := cloudtrailmodel.CloudTrail()
	for _, m := range members {
		x, ok := v[m.Name]
		if !ok || x == nil {
			continue
		}
		p := m.Name
		if path != "" {
			p = path + "." + m.Name
		}
		if err := checkValue(op, ct, m.Name, m.Shape, x, p); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(op cloudtrailmodel.Op, ct *cloudtrailmodel.Service, member, shape string, x any, path string) error {
	sh, ok := ct.Shape(shape)
	if !ok {
		return nil
	}
	switch sh.Type {
	case "string":
		s, ok := x.(string)
		if ok && len(sh.Enum) > 0 && !slices.Contains(sh.Enum, s) && !slices.Contains(enumExtensions[shape], s) {
			code := modeledCode(op, enumCodes[member]...)
			if code == "" && slices.Contains(op.Errors, string(audit.CodeUnsupportedOperation)+"Exception") {
				code = audit.CodeUnsupportedOperation
			}
			if code == "" {
				code = audit.CodeInvalidParameter
			}
			return audit.Errorf(code, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum value set: [%s]",
				audit.Truncate(s, 128), memberPath(path), strings.Join(sh.Enum, ", "))
		}
	case "list":
		l, ok := x.([]any)
		if !ok {
			return nil
		}
		for i, e := range l {
			if err := checkValue(op, ct, member, sh.Member, e, fmt.Sprintf("%s.%d.member", path, i+1)); err != nil {
				return err
			}
		}
	case "structure":
		if o, ok := x.(map[string]any); ok {
			return checkMembers(op, sh.Members, o, path)
		}
	}
	return nil
}

// memberPath writes a member path as Coral's validation messages do
// (queryStatus, eventSelectors.1.member.readWriteType).
func memberPath(path string) string {
	parts := strings.Split(path, ".")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToLower(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, ".")
}
