package importer

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows the import's progress on opts.Progress until the returned
// func is called: a bar redrawn five times a second on a terminal, else a
// line every five seconds.
func (r *run) progress(start time.Time) (stop func()) {
	w := r.opts.Progress
	if w == nil {
		return func() {}
	}
	tty := isTerminal(w)
	every := 5 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintf(w, "\r%s\x1b[K\n", r.status(start, true))
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(w, "\r%s\x1b[K", r.status(start, true))
				} else {
					fmt.Fprintf(w, "import: %s\n", r.status(start, false))
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// status is one line of progress.
func (r *run) status(start time.Time, withBar bool) string {
	files, total := r.done.Load(), r.found.Load()
	n := r.records.Load()
	secs := max(time.Since(start).Seconds(), 1e-3)
	s := fmt.Sprintf("files %d/%d  records %d  imported %d  %.0f records/s  %.1f MB/s",
		min(files, total), total, n, r.imported.Load(), float64(n)/secs, float64(r.bytes.Load())/1e6/secs)
	if !withBar {
		return s
	}
	return bar(files, total) + " " + s
}

// bar draws done/total as a bar of fixed width.
func bar(done, total int64) string {
	const width = 24
	n := int64(width)
	if total > 0 {
		n = min(done, total) * width / total
	}
	return "[" + strings.Repeat("#", int(n)) + strings.Repeat(".", width-int(n)) + "]"
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
