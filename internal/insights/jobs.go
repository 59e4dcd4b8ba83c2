package insights

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Job states.
const (
	JobRunning  = "RUNNING"
	JobFinished = "FINISHED"
	JobFailed   = "FAILED"
)

// ErrBusy is Jobs.Start's error when the account and region already have
// a run going, or MaxRunning runs are going.
var ErrBusy = errors.New("insights: a run is already going")

// JobsConfig configures Jobs. Feed, History and Sink are required.
type JobsConfig struct {
	Feed    Feed
	History Lookuper
	Sink    Sink
	Params  Params
	// MaxRunning bounds the runs going at once, all accounts together
	// (default 2).
	MaxRunning int
	// Keep is how long a finished run stays readable (default 1 hour);
	// MaxKept bounds the runs kept per account (default 16).
	Keep    time.Duration
	MaxKept int
	Logger  *slog.Logger
	Now     func() time.Time
}

// Job is one run of the detector over the stored history of one account
// and region (Retro), in the background.
type Job struct {
	ID, Account, Region string
	Status              string
	Result              RetroResult
	// Error is why a FAILED run failed.
	Error          string
	Started, Ended time.Time
}

// Jobs runs Retro in the background for the server, one run per account
// and region at a time, so that `cairn insights --endpoint-url` reads the
// store where it is instead of pulling it through LookupEvents. Runs are
// scoped to the account and region they were started for; Get answers an
// account only about its own runs.
type Jobs struct {
	cfg    JobsConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*Job // by ID
}

// NewJobs returns Jobs; Close stops its runs.
func NewJobs(cfg JobsConfig) *Jobs {
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = 2
	}
	if cfg.Keep <= 0 {
		cfg.Keep = time.Hour
	}
	if cfg.MaxKept <= 0 {
		cfg.MaxKept = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Jobs{cfg: cfg, ctx: ctx, cancel: cancel, jobs: map[string]*Job{}}
}

// Start starts a run over account's history in region with opts' time
// range and DryRun (its Account, Region, Params and Progress are set
// here). It returns the run's ID, or ErrBusy.
func (j *Jobs) Start(account, region string, opts RetroOptions) (string, error) {
	opts.Account, opts.Region, opts.Params, opts.Progress = account, region, j.cfg.Params, nil
	if err := opts.Params.Validate(); err != nil {
		return "", err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ctx.Err() != nil {
		return "", ErrBusy
	}
	j.expire()
	running := 0
	for _, x := range j.jobs {
		if x.Status != JobRunning {
			continue
		}
		running++
		if x.Account == account && x.Region == region {
			return "", ErrBusy
		}
	}
	if running >= j.cfg.MaxRunning {
		return "", ErrBusy
	}
	var b [16]byte
	rand.Read(b[:])
	job := &Job{ID: hex.EncodeToString(b[:]), Account: account, Region: region, Status: JobRunning, Started: j.cfg.Now()}
	j.jobs[job.ID] = job
	j.wg.Go(func() {
		res, err := Retro(j.ctx, j.cfg.Feed, j.cfg.History, j.cfg.Sink, opts)
		j.mu.Lock()
		defer j.mu.Unlock()
		job.Result, job.Ended = res, j.cfg.Now()
		job.Status = JobFinished
		if err != nil {
			job.Status, job.Error = JobFailed, err.Error()
			if j.ctx.Err() == nil {
				j.cfg.Logger.Warn("insights: run failed", "run", job.ID, "err", err)
			}
		}
	})
	return job.ID, nil
}

// Get returns the run id of account and region, if it is kept. A run is
// its tenant's: another account, or another region of the same account,
// does not see it (docs/security.md).
func (j *Jobs) Get(account, region, id string) (Job, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.expire()
	x, ok := j.jobs[id]
	if !ok || x.Account != account || x.Region != region {
		return Job{}, false
	}
	out := *x
	out.Result.Insights = slices.Clone(x.Result.Insights)
	return out, true
}

// expire forgets finished runs older than Keep, and the oldest finished
// runs of an account beyond MaxKept. j.mu must be held.
func (j *Jobs) expire() {
	now := j.cfg.Now()
	per := map[string][]*Job{}
	for id, x := range j.jobs {
		if x.Status != JobRunning && now.Sub(x.Ended) > j.cfg.Keep {
			delete(j.jobs, id)
			continue
		}
		per[x.Account] = append(per[x.Account], x)
	}
	for _, list := range per {
		if len(list) <= j.cfg.MaxKept {
			continue
		}
		slices.SortFunc(list, func(a, b *Job) int { return b.Started.Compare(a.Started) })
		for _, x := range list[j.cfg.MaxKept:] {
			if x.Status != JobRunning {
				delete(j.jobs, x.ID)
			}
		}
	}
}

// Close stops the runs going and waits for them.
func (j *Jobs) Close() {
	j.cancel()
	j.wg.Wait()
}
