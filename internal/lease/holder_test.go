package lease

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// memTable is a Table with expiry on the (synctest) clock, shared by
// several holders; a node marked down gets errors, as when the database
// is unreachable from it.
type memTable struct {
	mu      sync.Mutex
	holder  string
	token   int64
	expires time.Time
	down    map[string]bool
}

func (m *memTable) setDown(node string, down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down == nil {
		m.down = map[string]bool{}
	}
	m.down[node] = down
}

var errDown = errors.New("table unreachable")

func (m *memTable) Acquire(_ context.Context, _, holder string, ttl time.Duration) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down[holder] {
		return 0, false, errDown
	}
	if time.Now().Before(m.expires) {
		return 0, false, nil
	}
	m.holder, m.token, m.expires = holder, m.token+1, time.Now().Add(ttl)
	return m.token, true, nil
}

func (m *memTable) Renew(_ context.Context, f Fence, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down[f.Holder] {
		return false, errDown
	}
	if m.token != f.Token || !time.Now().Before(m.expires) {
		return false, nil
	}
	m.expires = time.Now().Add(ttl)
	return true, nil
}

func (m *memTable) Release(_ context.Context, f Fence) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down[f.Holder] {
		return errDown
	}
	if m.token == f.Token {
		m.expires = time.Time{}
	}
	return nil
}

// current returns the holding the table has now (holder "" when none).
func (m *memTable) current() (string, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !time.Now().Before(m.expires) {
		return "", m.token
	}
	return m.holder, m.token
}

// recorder is a job that records its runs: the fences it ran under and
// why each ended.
type recorder struct {
	mu     sync.Mutex
	fences []Fence
	ends   []error // context.Cause at each end
	active int
	max    int // most runs at once, across every node sharing it
}

func (r *recorder) job(ctx context.Context) error {
	f, _ := FenceFrom(ctx)
	r.mu.Lock()
	r.fences = append(r.fences, f)
	r.active++
	r.max = max(r.max, r.active)
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	r.active--
	r.ends = append(r.ends, context.Cause(ctx))
	r.mu.Unlock()
	return nil
}

func (r *recorder) runs() ([]Fence, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Fence(nil), r.fences...), append([]error(nil), r.ends...)
}

// start runs h.Run(name, job) until the returned stop is called; stop
// returns the worker's error.
func start(h *Holder, name string, job func(context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(name, job)(ctx) }()
	return func() error { cancel(); return <-done }
}

// TestHolderOneWriterAcrossNodes: three nodes contend for one lease: one
// runs the job at a time, whatever happens to the holder. Variants: the
// holder stops (releases: taken at once), the holder dies (its holding
// expires: taken within TTL + Retry), the holder is cut off from the
// table (it stops its job before its holding expires, so two never run at
// once), the holder is replaced behind its back (its renewal is refused).
// Every new holding has a larger token, and a job stopped by a loss sees
// Lost while one stopped by shutdown does not.
//
// Its times ("within 15 s") are synctest's clock, which moves only when
// every goroutine of the bubble waits: they are the Holder's own timing
// (TTL, TTL/3, Retry), whatever the load of the machine running the test.
func TestHolderOneWriterAcrossNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := &memTable{}
		var rec recorder
		regs := map[string]*prometheus.Registry{}
		stops := map[string]func() error{}
		for _, n := range []string{"a", "b", "c"} {
			regs[n] = prometheus.NewRegistry()
			h := NewHolder(Config{Table: tab, Node: n, Registerer: regs[n]})
			stops[n] = start(h, "delivery", rec.job)
		}
		synctest.Wait()
		first, tok := tab.current()
		if first == "" || tok != 1 {
			t.Fatalf("after start: holder %q token %d; want one holder with token 1", first, tok)
		}
		if got := held(t, regs[first], "delivery"); got != 1 {
			t.Errorf("cairn_lease_held on the holder = %v; want 1", got)
		}

		// 1. Cut off: the holder cannot renew. Its job stops before the
		// table's holding expires; another node takes over after it.
		tab.setDown(first, true)
		cut := time.Now()
		for {
			time.Sleep(100 * time.Millisecond)
			if h, _ := tab.current(); h != "" && h != first {
				break
			}
			if time.Since(cut) > 15*time.Second {
				t.Fatalf("no other node took the lease within 15 s of %s being cut off", first)
			}
		}
		second, tok2 := tab.current()
		if tok2 <= tok {
			t.Errorf("token after %s took over = %d; want more than %d", second, tok2, tok)
		}
		tab.setDown(first, false)

		// 2. Replaced behind its back: the table has another holding (an
		// operator's, a clock jump); the holder's renewal is refused and
		// it stops; a node takes the lease when that holding expires.
		tab.mu.Lock()
		tab.token++ // another holding, by no node running the job
		tab.holder, tab.expires = "intruder", time.Now().Add(DefaultTTL)
		tab.mu.Unlock()
		time.Sleep(DefaultTTL + DefaultRetry + time.Second)
		third, tok3 := tab.current()
		if third == "" || tok3 <= tok2+1 {
			t.Errorf("after the holding was replaced: holder %q token %d; want a new holding above %d", third, tok3, tok2+1)
		}

		// 3. Dies: the holder stops without releasing (as a SIGKILL).
		stops[third]() // releases: another takes it within Retry
		synctest.Wait()
		stopped := time.Now()
		for {
			if h, _ := tab.current(); h != "" && h != third {
				break
			}
			time.Sleep(100 * time.Millisecond)
			if time.Since(stopped) > DefaultRetry+time.Second {
				t.Fatalf("a released lease was not taken within Retry")
			}
		}
		if got := changes(t, regs[third], "delivery", "released"); got < 1 {
			t.Errorf("released count on %s = %v; want at least 1", third, got)
		}
		for n, stop := range stops {
			if n != third {
				if err := stop(); err != nil {
					t.Errorf("worker %s = %v", n, err)
				}
			}
		}
		synctest.Wait()

		fences, ends := rec.runs()
		if rec.max != 1 {
			t.Errorf("the job ran %d times at once; want 1", rec.max)
		}
		for i := 1; i < len(fences); i++ {
			if fences[i].Token <= fences[i-1].Token {
				t.Errorf("run %d token %d after %d; want increasing", i, fences[i].Token, fences[i-1].Token)
			}
		}
		if len(ends) < 4 {
			t.Fatalf("runs ended %d times; want at least 4 (cut off, replaced, stopped, stopped)", len(ends))
		}
		if !errors.Is(ends[0], ErrLost) || !errors.Is(ends[1], ErrLost) {
			t.Errorf("causes of the losses = %v, %v; want ErrLost", ends[0], ends[1])
		}
		if last := ends[len(ends)-1]; errors.Is(last, ErrLost) {
			t.Errorf("cause at shutdown = %v; want not ErrLost (the job's shutdown work runs)", last)
		}
		if got := changes(t, regs[first], "delivery", "lost"); got < 1 {
			t.Errorf("lost count on %s = %v; want at least 1", first, got)
		}
	})
}

// TestHolderDeadNodeExpires: a node that dies holding the lease (its
// process gone: no release) loses it to another within TTL + Retry.
func TestHolderDeadNodeExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := &memTable{}
		var rec recorder
		stopA := start(NewHolder(Config{Table: tab, Node: "a"}), "retention", rec.job)
		synctest.Wait()
		// "a" dies: it can no longer reach the table, not even to release.
		tab.setDown("a", true)
		died := time.Now()
		stopA()
		stopB := start(NewHolder(Config{Table: tab, Node: "b"}), "retention", rec.job)
		defer stopB()
		for {
			if h, _ := tab.current(); h == "b" {
				break
			}
			time.Sleep(100 * time.Millisecond)
			if time.Since(died) > 15*time.Second {
				t.Fatal("b did not take a dead node's lease within 15 s")
			}
		}
		if took := time.Since(died); took < DefaultTTL-time.Second {
			t.Errorf("b took the lease %v after a died; want after its TTL (%v)", took, DefaultTTL)
		}
	})
}

// TestHolderJobEnds: how the job's own return is taken. Variants: nil
// before the stop (finished: the worker returns nil and releases),
// ErrFenced (a loss: the job runs again under a new token), another error
// (returned: it stops the server, as without leases).
func TestHolderJobEnds(t *testing.T) {
	boom := errors.New("boom")
	t.Run("finished", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tab := &Local{}
			err := NewHolder(Config{Table: tab, Node: "n"}).Run("x", func(context.Context) error { return nil })(context.Background())
			if err != nil {
				t.Fatalf("Run = %v; want nil", err)
			}
			if _, ok, _ := tab.Acquire(context.Background(), "x", "m", time.Second); !ok {
				t.Errorf("the lease was not released when its job finished")
			}
		})
	})
	t.Run("fenced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var tokens []int64
			job := func(ctx context.Context) error {
				f, _ := FenceFrom(ctx)
				tokens = append(tokens, f.Token)
				if len(tokens) < 3 {
					return wrapFenced()
				}
				<-ctx.Done()
				return nil
			}
			stop := start(NewHolder(Config{Node: "n"}), "x", job)
			time.Sleep(3 * DefaultRetry)
			synctest.Wait()
			if err := stop(); err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
			if len(tokens) != 3 || tokens[0] >= tokens[1] || tokens[1] >= tokens[2] {
				t.Errorf("tokens of the runs = %v; want three, increasing", tokens)
			}
		})
	})
	t.Run("failed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := NewHolder(Config{Node: "n"}).Run("x", func(context.Context) error { return boom })(context.Background())
			if !errors.Is(err, boom) {
				t.Fatalf("Run = %v; want boom", err)
			}
		})
	})
	t.Run("unreachable then reachable", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tab := &memTable{}
			tab.setDown("n", true)
			var rec recorder
			stop := start(NewHolder(Config{Table: tab, Node: "n"}), "x", rec.job)
			time.Sleep(5 * DefaultRetry)
			if f, _ := rec.runs(); len(f) != 0 {
				t.Fatalf("the job ran without the lease")
			}
			tab.setDown("n", false)
			time.Sleep(DefaultRetry + time.Second)
			if f, _ := rec.runs(); len(f) != 1 {
				t.Errorf("runs once the table is back = %d; want 1", len(f))
			}
			stop()
		})
	})
}

// wrapFenced is a writer's error refusing a stale fence, wrapped.
func wrapFenced() error { return errors.Join(errors.New("write trail position"), ErrFenced) }

// value returns the value of the sample of metric name with labels.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no sample of %s %v", name, labels)
	return 0
}

func held(t *testing.T, reg *prometheus.Registry, lease string) float64 {
	t.Helper()
	return value(t, reg, "cairn_lease_held", map[string]string{"lease": lease})
}

func changes(t *testing.T, reg *prometheus.Registry, lease, change string) float64 {
	t.Helper()
	return value(t, reg, "cairn_lease_changes_total", map[string]string{"lease": lease, "change": change})
}
