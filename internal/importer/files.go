package importer

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// collect lists the files to read, in a stable order: the files named in
// paths, then the log files found in the folders named there. Digest files,
// hidden files and files of other kinds inside folders are counted Skipped;
// a path that cannot be read is a file error.
func (r *run) collect(paths []string) []string {
	stat, walk := os.Stat, filepath.WalkDir
	if fsys := r.opts.FS; fsys != nil {
		stat = func(p string) (fs.FileInfo, error) { return fs.Stat(fsys, p) }
		walk = func(p string, fn fs.WalkDirFunc) error { return fs.WalkDir(fsys, p, fn) }
	}
	var files []string
	for _, p := range paths {
		st, err := stat(p)
		if err != nil {
			r.failFile(p, 0, err)
			continue
		}
		if !st.IsDir() {
			if isDigestName(p) {
				r.skipped.Add(1)
				continue
			}
			files = append(files, p)
			continue
		}
		var found []string
		_ = walk(p, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				r.failFile(path, 0, err)
				return nil
			case d.IsDir():
				if path != p && (d.Name() == "CloudTrail-Digest" || strings.HasPrefix(d.Name(), ".")) {
					r.skipped.Add(countFiles(walk, path))
					return fs.SkipDir
				}
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				// Followed, through opts.FS only within it.
				if st, err := stat(path); err != nil || !st.Mode().IsRegular() {
					r.skipped.Add(1)
					return nil
				}
			} else if !d.Type().IsRegular() {
				r.skipped.Add(1)
				return nil
			}
			if isLogName(d.Name()) && !isDigestName(path) {
				found = append(found, path)
			} else {
				r.skipped.Add(1)
			}
			return nil
		})
		slices.Sort(found)
		files = append(files, found...)
	}
	return files
}

// isLogName reports whether a file found in a folder may hold records.
func isLogName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	name = strings.ToLower(name)
	for _, ext := range []string{".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".gz"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// isDigestName reports whether path names a CloudTrail digest file
// (<account>_CloudTrail-Digest_<region>_..., under CloudTrail-Digest/).
func isDigestName(path string) bool {
	return strings.Contains(filepath.Base(path), "_CloudTrail-Digest_")
}

// countFiles counts the files under dir, for a skipped folder.
func countFiles(walk func(string, fs.WalkDirFunc) error, dir string) int64 {
	var n int64
	_ = walk(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}
