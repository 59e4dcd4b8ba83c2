// Package builtin holds cairn's built-in hunts: Sigma rules written for
// cairn (issue 17), shipped inside the binary and loaded with
// sigma.LoadFS(cfg, builtin.FS(), "builtin:").
package builtin

import (
	"embed"
	"io/fs"
)

//go:embed rules
var rules embed.FS

// FS is the folder of built-in rules (.yml files, possibly in subfolders).
func FS() fs.FS {
	sub, err := fs.Sub(rules, "rules")
	if err != nil {
		panic(err) // "rules" is embedded above; unreachable
	}
	return sub
}
