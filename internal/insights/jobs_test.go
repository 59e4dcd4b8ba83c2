package insights

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// gateFeed blocks ReadAppended until release is closed, then returns
// nothing.
type gateFeed struct{ release chan struct{} }

func (g gateFeed) ReadAppended(ctx context.Context, _ int64, _ int) ([]audit.Appended, error) {
	select {
	case <-g.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type noHistory struct{}

func (noHistory) Lookup(context.Context, audit.Query) (audit.Page, error) { return audit.Page{}, nil }

type noSink struct{}

func (noSink) Append(context.Context, []audit.Record) (audit.AppendResult, error) {
	return audit.AppendResult{}, nil
}

// TestJobsScopeAndLimits: a run is answered only to its account; one run
// per account and region at a time, MaxRunning in all; Close stops runs
// going; finished runs are forgotten after Keep.
func TestJobsScopeAndLimits(t *testing.T) {
	feed := gateFeed{release: make(chan struct{})}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	j := NewJobs(JobsConfig{Feed: feed, History: noHistory{}, Sink: noSink{}, Params: DefaultParams(), MaxRunning: 2,
		Keep: time.Hour, Now: func() time.Time { return now }})
	defer j.Close()
	a, err := j.Start("111111111111", "us-east-1", RetroOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Start("111111111111", "us-east-1", RetroOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("second run of the same account and region: %v; want ErrBusy", err)
	}
	b, err := j.Start("111111111111", "eu-west-1", RetroOptions{})
	if err != nil {
		t.Errorf("another region: %v", err)
	}
	if _, err := j.Start("222222222222", "us-east-1", RetroOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("a third run beyond MaxRunning 2: %v; want ErrBusy", err)
	}
	if _, ok := j.Get("222222222222", "us-east-1", a); ok {
		t.Error("another account reads the run")
	}
	if _, ok := j.Get("111111111111", "eu-west-1", a); ok {
		t.Error("another region of the same account reads the run")
	}
	if job, ok := j.Get("111111111111", "us-east-1", a); !ok || job.Status != JobRunning || job.Account != "111111111111" {
		t.Errorf("own run: %+v %v", job, ok)
	}
	close(feed.release)
	for deadline := testwait.End(t); ; time.Sleep(5 * time.Millisecond) {
		ja, _ := j.Get("111111111111", "us-east-1", a)
		jb, _ := j.Get("111111111111", "eu-west-1", b)
		if ja.Status == JobFinished && jb.Status == JobFinished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not finish")
		}
	}
	now = now.Add(2 * time.Hour)
	if _, ok := j.Get("111111111111", "us-east-1", a); ok {
		t.Error("a run finished 2 hours ago is still kept")
	}
}

// TestJobsCloseStopsRuns: Close ends runs going; they are FAILED, not
// left RUNNING.
func TestJobsCloseStopsRuns(t *testing.T) {
	j := NewJobs(JobsConfig{Feed: gateFeed{release: make(chan struct{})}, History: noHistory{}, Sink: noSink{}, Params: DefaultParams()})
	id, err := j.Start("111111111111", "us-east-1", RetroOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if job, ok := j.Get("111111111111", "us-east-1", id); !ok || job.Status != JobFailed {
		t.Errorf("after Close: %+v %v", job, ok)
	}
	if _, err := j.Start("111111111111", "us-east-1", RetroOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("Start after Close: %v", err)
	}
}
