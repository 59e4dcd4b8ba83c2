package gateway

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

// parseError returns the error code and message of an upstream error
// response: JSON ({"__type": "ns#Code", "message": ...}, the X-Amzn-ErrorType
// header) or XML (<Error><Code/><Message/></Error>, inside <ErrorResponse>
// for query services). Without a body (HEAD) the code is derived from the
// status. body may be a truncated prefix of the response.
func parseError(status int, h http.Header, body []byte) (code, message string) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '{' {
		var v map[string]any
		if json.Unmarshal(body, &v) == nil {
			code = str(v["__type"])
			if code == "" {
				code = str(v["code"])
			}
			if code == "" {
				code = str(v["Code"])
			}
			message = str(v["message"])
			if message == "" {
				message = str(v["Message"])
			}
			if message == "" {
				message = str(v["errorMessage"])
			}
		}
	} else if len(body) > 0 && body[0] == '<' {
		code, message = xmlError(body)
	}
	if code == "" {
		code = h.Get("X-Amzn-ErrorType")
	}
	code = cleanCode(code)
	if code == "" {
		code = statusCode(status)
	}
	return code, audit.Truncate(message, 1024)
}

// cleanCode strips a shape namespace ("com.amazonaws.dynamodb#X") and the
// ":http://..." suffix some services append.
func cleanCode(c string) string {
	if i := strings.LastIndexByte(c, '#'); i >= 0 {
		c = c[i+1:]
	}
	if i := strings.IndexByte(c, ':'); i >= 0 {
		c = c[:i]
	}
	return audit.Truncate(strings.TrimSpace(c), 1024)
}

func xmlError(body []byte) (code, message string) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = false
	var cur string
	for {
		tok, err := d.Token()
		if err != nil {
			return code, message
		}
		switch t := tok.(type) {
		case xml.StartElement:
			cur = t.Name.Local
		case xml.EndElement:
			cur = ""
		case xml.CharData:
			switch cur {
			case "Code":
				if code == "" {
					code = strings.TrimSpace(string(t))
				}
			case "Message":
				if message == "" {
					message = strings.TrimSpace(string(t))
				}
			}
		}
		if code != "" && message != "" {
			return code, message
		}
	}
}

func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusForbidden:
		return "AccessDenied"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusMethodNotAllowed:
		return "MethodNotAllowed"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusPreconditionFailed:
		return "PreconditionFailed"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	}
	if status >= 500 {
		return "InternalError"
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
