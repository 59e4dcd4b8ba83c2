//go:build !unix

package detect

import "time"

// cpuTime is not measured here (the benchmark's cpu metrics read 0).
func cpuTime() time.Duration { return 0 }
