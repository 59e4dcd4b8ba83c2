package importer

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Objects is a bucket that log files are read from: an S3 bucket or a local
// folder with the S3 layout (internal/bucket implements it).
type Objects interface {
	// List returns up to limit keys under prefix in lexical order, after
	// startAfter ("" = from the first).
	List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error)
	// Open streams an object's body; the caller closes it.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
}

// listPage is how many keys RunObjects lists at once.
const listPage = 1000

// ParseS3URI splits s3://bucket/prefix into the bucket and the key prefix
// ("" for the whole bucket). The bucket must be a plausible S3 bucket name.
func ParseS3URI(uri string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not an s3:// URI", uri)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !validBucketName(bucket) {
		return "", "", fmt.Errorf("%q does not name a valid S3 bucket", uri)
	}
	if strings.ContainsAny(prefix, "\x00") || len(prefix) > 1024 {
		return "", "", fmt.Errorf("%q has an invalid key prefix", uri)
	}
	return bucket, prefix, nil
}

// validBucketName reports whether name follows S3's naming rules: 3-63
// lower-case letters, digits, dots and hyphens, starting and ending with a
// letter or digit.
func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '-') && i > 0 && i < len(name)-1:
		default:
			return false
		}
	}
	return true
}

// RunObjects imports the log files under prefix in the bucket called
// bucket, read through objs: keys are listed a page at a time while files
// are read, and each object is streamed (never held whole). It skips what
// Run skips in a folder (digests, the CloudTrail-Digest folder, hidden
// files, other extensions) and, as AWS's Lake import does, the folders of
// other AWS services in the AWSLogs/<account>/<service>/ layout unless
// prefix reaches into them. Files are named s3://bucket/key in the Report.
// A listing error is a file error of s3://bucket/prefix and ends the
// listing; what was listed before it is still read.
func RunObjects(ctx context.Context, objs Objects, bucket, prefix string, opts Options) (Report, error) {
	start := time.Now()
	r, err := newRun(opts)
	if err != nil {
		return Report{}, err
	}
	base := "s3://" + bucket + "/"
	open := func(ctx context.Context, name string) (io.ReadCloser, error) {
		return objs.Open(ctx, strings.TrimPrefix(name, base))
	}
	return r.run(ctx, start, open, func(ctx context.Context, work chan<- string) {
		after := ""
		for {
			keys, err := objs.List(ctx, prefix, after, listPage)
			if err != nil {
				if ctx.Err() == nil {
					r.failFile(base+prefix, 0, fmt.Errorf("listing: %w", err))
				}
				return
			}
			for _, k := range keys {
				if !importableKey(prefix, k) || opts.Accounts != nil && !keyAccountAllowed(k, opts.Accounts) {
					r.skipped.Add(1)
					continue
				}
				r.found.Add(1)
				select {
				case work <- base + k:
				case <-ctx.Done():
					return
				}
			}
			if len(keys) < listPage {
				return
			}
			after = keys[len(keys)-1]
		}
	})
}

// importableKey reports whether the object key, listed under prefix, is a
// log file to read.
func importableKey(prefix, key string) bool {
	if !strings.HasPrefix(key, prefix) || strings.HasSuffix(key, "/") {
		return false
	}
	name := path.Base(key)
	if !isLogName(name) || isDigestName(name) {
		return false
	}
	dirs := strings.Split(key, "/")
	dirs = dirs[:len(dirs)-1]
	off := 0 // byte offset of dirs[i] in key
	for _, d := range dirs {
		// Folders below the prefix: hidden ones and CloudTrail-Digest are skipped.
		if off+len(d) >= len(prefix) && (strings.HasPrefix(d, ".") || d == "CloudTrail-Digest") {
			return false
		}
		off += len(d) + 1
	}
	off = 0
	for i, d := range dirs {
		if d == "AWSLogs" {
			return cloudTrailFolder(prefix, dirs[i+1:], off+len(d)+1)
		}
		off += len(d) + 1
	}
	return true
}

// cloudTrailFolder reports whether the folders after AWSLogs/ (starting at
// byte off of the key) lead to CloudTrail's folder, or the prefix already
// reaches into the service folder they name (the caller chose it).
func cloudTrailFolder(prefix string, dirs []string, off int) bool {
	for _, d := range dirs {
		if isAccountID(d) || strings.HasPrefix(d, "o-") {
			off += len(d) + 1
			continue
		}
		return d == "CloudTrail" || len(prefix) > off
	}
	return true
}

// keyAccountAllowed reports whether a key outside the AWSLogs layout, or in
// the folder of an account allowed accepts, may be read.
func keyAccountAllowed(key string, allowed func(string) bool) bool {
	dirs := strings.Split(key, "/")
	for i, d := range dirs[:len(dirs)-1] {
		if d != "AWSLogs" {
			continue
		}
		for _, a := range dirs[i+1 : len(dirs)-1] {
			if strings.HasPrefix(a, "o-") {
				continue
			}
			if isAccountID(a) {
				return allowed(a)
			}
			break
		}
	}
	return true
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
