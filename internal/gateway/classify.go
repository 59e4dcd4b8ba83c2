package gateway

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/gateway/routes"
)

// scope is what a request's SigV4 credential scope says.
type scope struct {
	accessKey, region, service string
	// sigv4 is set when the request carries a SigV4 credential
	// (Authorization header or presigned X-Amz-Credential), presigned
	// when it is a presigned URL's.
	sigv4, presigned bool
}

// valid reports whether a SigV4 credential, when there is one, is a
// well-formed scope of an AWS region (audit.ValidRegion): the region a
// call is recorded in comes from it. Unsigned and SigV2 calls have no
// scope and are recorded in us-east-1.
func (sc scope) valid() bool {
	return !sc.sigv4 || sc.service != "" && audit.ValidRegion(sc.region)
}

// sigv4Algorithm is SigV4's; SigV4a (AWS4-ECDSA-P256-SHA256) scopes no
// region (X-Amz-Region-Set names them) and is recorded in us-east-1.
const sigv4Algorithm = "AWS4-HMAC-SHA256"

// credentialScope reads the scope from the Authorization header
// (AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request) or a
// presigned URL's X-Amz-Credential; SigV2 presigned URLs give the key only.
func credentialScope(r *http.Request, q url.Values) scope {
	cred := ""
	sigv4, presigned := false, false
	if a := r.Header.Get("Authorization"); a != "" {
		sigv4 = strings.HasPrefix(a, sigv4Algorithm+" ")
		if i := strings.Index(a, "Credential="); i >= 0 {
			cred = a[i+len("Credential="):]
			if j := strings.IndexAny(cred, ", "); j >= 0 {
				cred = cred[:j]
			}
		} else if strings.HasPrefix(a, "AWS ") { // SigV2: AWS AKID:sig
			k, _, _ := strings.Cut(a[4:], ":")
			return scope{accessKey: k}
		}
	} else if c := q.Get("X-Amz-Credential"); c != "" || q.Has("X-Amz-Algorithm") {
		alg := q.Get("X-Amz-Algorithm")
		cred, sigv4, presigned = c, alg == sigv4Algorithm || alg == "", true
	} else if k := q.Get("AWSAccessKeyId"); k != "" {
		return scope{accessKey: k}
	}
	p := strings.Split(cred, "/")
	if len(p) != 5 || p[3] == "" {
		// Malformed: the key alone (valid reports it).
		return scope{accessKey: p[0], sigv4: sigv4, presigned: presigned}
	}
	return scope{accessKey: p[0], region: p[2], service: p[3], sigv4: sigv4, presigned: presigned}
}

// call is a classified request.
type call struct {
	svc    *routes.Service
	op     *routes.Operation
	name   string            // operation name ("" when unknown)
	labels map[string]string // URI labels of REST operations
	bucket string            // S3 bucket, from the host or the path
	key    string            // S3 object key
}

// s3HostBucket returns the bucket of a virtual-host-style S3 request:
// <bucket>.s3[.-]..., or <bucket>.<domain> for a configured virtual-host
// domain. Path-style requests (IP or bare host) give "".
func s3HostBucket(host string, domains []string) string {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if net.ParseIP(h) != nil {
		return ""
	}
	for _, d := range domains {
		if strings.HasSuffix(h, "."+d) {
			return strings.TrimSuffix(h, "."+d)
		}
	}
	for _, sep := range []string{".s3.", ".s3-"} {
		if i := strings.LastIndex(h, sep); i > 0 {
			return h[:i]
		}
	}
	return ""
}

// classify names the operation of r: X-Amz-Target for JSON services, Action
// for query services (form is the parsed query plus form body), method and
// URI template for REST services.
func (g *Gateway) classify(r *http.Request, sc scope, q url.Values, form url.Values) call {
	c := call{svc: routes.Lookup(sc.service)}
	if c.svc == nil {
		// Unknown or missing scope: still name what the request says.
		if t := r.Header.Get("X-Amz-Target"); t != "" {
			if _, n, ok := strings.Cut(t, "."); ok {
				c.name = n
			}
		} else if a := form.Get("Action"); a != "" {
			c.name = a
		}
		return c
	}
	switch c.svc.Protocol {
	case "json":
		c.op = c.svc.MatchTarget(r.Header.Get("X-Amz-Target"))
	case "query", "ec2":
		c.op = c.svc.Operation(form.Get("Action"))
	default:
		path := r.URL.EscapedPath()
		if c.svc.Name == "s3" {
			if b := s3HostBucket(r.Host, g.cfg.VirtualHostDomains); b != "" {
				c.bucket = b
				path = "/" + url.PathEscape(b) + path
				if path == "/"+url.PathEscape(b)+"/" {
					path = "/" + url.PathEscape(b)
				}
			}
		}
		c.op, c.labels = c.svc.MatchREST(r.Method, path, q, r.Header)
		if c.svc.Name == "s3" {
			if c.bucket == "" {
				c.bucket = c.labels["Bucket"]
			}
			c.key = c.labels["Key"]
		}
	}
	if c.op != nil {
		c.name = c.op.Name
	}
	return c
}
