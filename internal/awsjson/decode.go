package awsjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

// MaxDepth is how deeply Decode lets objects and arrays nest. CloudTrail's
// deepest input (advanced event selectors) nests 5 levels.
const MaxDepth = 32

// Decode decodes an AWS JSON 1.1 request body into v, a non-nil pointer to
// a struct (or map). It differs from encoding/json as AWS's Coral services
// do:
//
//   - an empty (or all-space) body means {};
//   - the body must be one JSON object: other top-level values and trailing
//     data are refused;
//   - member names match exactly (case-sensitive): a struct field matches
//     its json tag name or else its Go name; unknown members are ignored;
//   - null means absent;
//   - a member of the wrong JSON type is refused with Coral's text, e.g.
//     "STRING_VALUE cannot be converted to Integer", "Start of structure or
//     map found where not expected", "Unexpected field type", followed by
//     the member's path: " (member LookupAttributes[0].AttributeKey)";
//   - numbers must fit the field: 1.5 or 3000000000 into an int32 are
//     refused; []byte fields take base64 strings (AWS blobs);
//   - nesting deeper than MaxDepth is refused;
//   - the body must be text: invalid UTF-8, NUL and unpaired surrogate
//     escapes are refused (CheckText).
//
// Fields whose types implement json.Unmarshaler (Timestamp) get the
// member's JSON text. Every error is an *Error with Code
// SerializationException and Status 400; its message contains no input
// other than member names the struct declares, list indexes and (clipped,
// quoted) map keys.
func Decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &Error{Code: CodeInternalFailure, Status: http.StatusInternalServerError,
			Message: "The request processing has failed because of an unknown error, exception or failure.",
			Cause:   fmt.Errorf("awsjson: Decode needs a non-nil pointer, got %T", v)}
	}
	if err := CheckText(body); err != nil {
		return err
	}
	if depth(body) > MaxDepth {
		return serialization(fmt.Sprintf("The request body nests more than %d levels deep.", MaxDepth))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return serialization("Unexpected data after the JSON object.")
	}
	if _, ok := root.(map[string]any); !ok {
		return serialization(notExpected(root, "Structure") + "; the request body must be a JSON object.")
	}
	return assign(rv.Elem(), root, "")
}

func serialization(msg string) *Error {
	return &Error{Code: CodeSerialization, Message: msg, Status: http.StatusBadRequest}
}

func syntaxError(err error) *Error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return &Error{Code: CodeSerialization, Status: http.StatusBadRequest, Cause: err,
			Message: fmt.Sprintf("The request body is not valid JSON (at byte offset %d).", se.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Code: CodeSerialization, Status: http.StatusBadRequest, Cause: err,
			Message: "The request body is not valid JSON (unexpected end of input)."}
	}
	return &Error{Code: CodeSerialization, Status: http.StatusBadRequest, Cause: err,
		Message: "The request body is not valid JSON."}
}

// depth returns the deepest nesting of objects and arrays in b, ignoring
// brackets inside strings.
func depth(b []byte) int {
	d, maxD, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			d++
			maxD = max(maxD, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return maxD
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// assign stores the generic JSON value node (from a UseNumber decode) into
// dst, a settable value. path names the member for messages.
func assign(dst reflect.Value, node any, path string) error {
	if node == nil {
		return nil // null means absent
	}
	if !dst.CanSet() {
		return memberError("Unsupported member type", path)
	}
	if dst.CanAddr() && dst.Addr().Type().Implements(unmarshalerType) {
		raw, err := json.Marshal(node)
		if err != nil {
			return memberError("The value could not be read", path)
		}
		if err := dst.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			var ae *Error
			if errors.As(err, &ae) {
				return memberError(ae.Message, path)
			}
			return memberError("The value could not be read", path)
		}
		return nil
	}
	t := dst.Type()
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := assign(p.Elem(), node, path); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return memberError("Unsupported member type", path)
		}
		dst.Set(reflect.ValueOf(node))
		return nil
	case reflect.Struct:
		obj, ok := node.(map[string]any)
		if !ok {
			return typeError(node, "Structure", path)
		}
		return assignStruct(dst, obj, path)
	case reflect.Map:
		obj, ok := node.(map[string]any)
		if !ok {
			return typeError(node, "Map", path)
		}
		if t.Key().Kind() != reflect.String {
			return memberError("Unsupported member type", path)
		}
		m := reflect.MakeMapWithSize(t, len(obj))
		for k, val := range obj {
			ev := reflect.New(t.Elem()).Elem()
			if err := assign(ev, val, path+"["+strconv.Quote(audit.Clip(k, 64))+"]"); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
		}
		dst.Set(m)
		return nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			s, ok := node.(string)
			if !ok {
				return memberError("only base-64-encoded strings are convertible to bytes", path)
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return memberError("only base-64-encoded strings are convertible to bytes", path)
			}
			dst.SetBytes(b)
			return nil
		}
		arr, ok := node.([]any)
		if !ok {
			return typeError(node, "List", path)
		}
		s := reflect.MakeSlice(t, len(arr), len(arr))
		for i, el := range arr {
			if err := assign(s.Index(i), el, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		dst.Set(s)
		return nil
	case reflect.String:
		s, ok := node.(string)
		if !ok {
			return typeError(node, "String", path)
		}
		dst.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := node.(bool)
		if !ok {
			return typeError(node, "Boolean", path)
		}
		dst.SetBool(b)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		name := intName(t)
		n, ok := node.(json.Number)
		if !ok {
			return typeError(node, name, path)
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || dst.OverflowInt(i) {
			return memberError(valueKind(node)+" cannot be converted to "+name, path)
		}
		dst.SetInt(i)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := node.(json.Number)
		if !ok {
			return typeError(node, "Integer", path)
		}
		u, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil || dst.OverflowUint(u) {
			return memberError(valueKind(node)+" cannot be converted to Integer", path)
		}
		dst.SetUint(u)
		return nil
	case reflect.Float32, reflect.Float64:
		name := "Double"
		if t.Kind() == reflect.Float32 {
			name = "Float"
		}
		n, ok := node.(json.Number)
		if !ok {
			return typeError(node, name, path)
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) || dst.OverflowFloat(f) {
			return memberError("Numeric value out of range of "+name, path)
		}
		dst.SetFloat(f)
		return nil
	}
	return memberError("Unsupported member type", path)
}

// assignStruct sets the fields of dst from obj, matching names exactly.
func assignStruct(dst reflect.Value, obj map[string]any, path string) error {
	t := dst.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, skip := fieldName(f)
		if skip {
			continue
		}
		if f.Anonymous && name == "" {
			fv := dst.Field(i)
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct {
				continue
			}
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					if !fv.CanSet() {
						continue
					}
					fv.Set(reflect.New(ft))
				}
				fv = fv.Elem()
			}
			if err := assignStruct(fv, obj, path); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		node, ok := obj[name]
		if !ok {
			continue
		}
		member := name
		if path != "" {
			member = path + "." + name
		}
		if err := assign(dst.Field(i), node, member); err != nil {
			return err
		}
	}
	return nil
}

// fieldName returns the JSON name of f ("" for an untagged field) and
// whether Decode skips it (unexported or tagged "-").
func fieldName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", true
	}
	name, _, _ := strings.Cut(tag, ",")
	if !f.IsExported() && !(f.Anonymous && name == "") {
		return "", true
	}
	return name, false
}

func intName(t reflect.Type) string {
	if t.Kind() == reflect.Int64 || t.Kind() == reflect.Int {
		return "Long"
	}
	return "Integer"
}

// valueKind names a JSON value as Coral's messages do.
func valueKind(node any) string {
	switch n := node.(type) {
	case string:
		return "STRING_VALUE"
	case bool:
		if n {
			return "TRUE_VALUE"
		}
		return "FALSE_VALUE"
	case json.Number:
		if strings.ContainsAny(string(n), ".eE") {
			return "DECIMAL_VALUE"
		}
		return "NUMBER_VALUE"
	}
	return "VALUE"
}

// notExpected is Coral's text for node found where a want was expected.
func notExpected(node any, want string) string {
	switch node.(type) {
	case map[string]any:
		return "Start of structure or map found where not expected"
	case []any:
		return "Start of list found where not expected"
	case nil:
		return "Null found where not expected"
	}
	if want == "Structure" || want == "Map" || want == "List" {
		return "Unexpected field type"
	}
	return valueKind(node) + " cannot be converted to " + want
}

func typeError(node any, want, path string) *Error {
	return memberError(notExpected(node, want), path)
}

func memberError(msg, path string) *Error {
	if path == "" {
		return serialization(msg + ".")
	}
	return serialization(msg + " (member " + path + ").")
}
