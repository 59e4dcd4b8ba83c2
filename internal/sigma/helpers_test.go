package sigma

import (
	"os"
	"path/filepath"
)

func writeFile(name, src string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return os.WriteFile(name, []byte(src), 0o644)
}
