package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// gatedEach is a MemStore (an EachAppender) whose appends each take a
// token from gate (if set; closing it lets all through) and fail with err
// while err is set.
type gatedEach struct {
	*audittest.MemStore
	mu      sync.Mutex
	gate    chan struct{}
	err     error
	appends int
	sizes   []int
}

func (g *gatedEach) wait() error {
	if g.gate != nil {
		<-g.gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.appends++
	return g.err
}

func (g *gatedEach) AppendEach(ctx context.Context, rs []audit.Record) ([]bool, error) {
	if err := g.wait(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.sizes = append(g.sizes, len(rs))
	g.mu.Unlock()
	return g.MemStore.AppendEach(ctx, rs)
}

func (g *gatedEach) setErr(err error) {
	g.mu.Lock()
	g.err = err
	g.mu.Unlock()
}

func acctRecs(account string, from, n int) []audit.Record {
	out := make([]audit.Record, n)
	for i := range out {
		out[i] = audit.Record{Account: account, EventID: fmt.Sprintf("%s-%d", account, from+i)}
	}
	return out
}

// Concurrent Submit calls share one store append (group commit) when the
// store reports per record, and each still gets exact counts: its
// duplicates, a duplicate inside another call of the same append, and new
// records.
func TestSubmitsShareAppendsWithExactCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &gatedEach{MemStore: audittest.NewMemStore(), gate: make(chan struct{})}
		st.MemStore.Append(t.Context(), acctRecs("111111111111", 0, 2)) // stored before
		p := New(Config{Store: st, MaxDelay: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Run(ctx)
		// The first call holds the writer in an append; the next ones
		// queue and must share the following append.
		first := make(chan error, 1)
		go func() { _, err := p.Submit(t.Context(), acctRecs("111111111111", 100, 1)...); first <- err }()
		synctest.Wait()
		type out struct {
			i   int
			res audit.AppendResult
			err error
		}
		outs := make(chan out, 8)
		calls := [][]audit.Record{
			acctRecs("111111111111", 0, 3),  // 2 duplicates, 1 new
			acctRecs("222222222222", 0, 5),  // 5 new
			acctRecs("222222222222", 3, 4),  // 3, 4 inserted by the call above or this one
			acctRecs("333333333333", 0, 1),  // 1 new
			acctRecs("111111111111", 50, 2), // 2 new
		}
		for i, rs := range calls {
			go func() { res, err := p.Submit(t.Context(), rs...); outs <- out{i, res, err} }()
		}
		synctest.Wait()
		close(st.gate)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		got := map[int]audit.AppendResult{}
		for range calls {
			o := <-outs
			if o.err != nil {
				t.Fatalf("Submit %d = %v", o.i, o.err)
			}
			got[o.i] = o.res
		}
		if got[0] != (audit.AppendResult{Inserted: 1, Duplicates: 2}) {
			t.Errorf("call 0 = %+v; want 1 inserted, 2 duplicates", got[0])
		}
		// Calls 1 and 2 overlap on 2 records: between them, each
		// record is inserted once.
		if n := got[1].Inserted + got[2].Inserted; n != 7 || got[1].Duplicates+got[2].Duplicates != 2 {
			t.Errorf("calls 1 and 2 = %+v, %+v; want 7 inserted and 2 duplicates between them", got[1], got[2])
		}
		if got[3] != (audit.AppendResult{Inserted: 1}) || got[4] != (audit.AppendResult{Inserted: 2}) {
			t.Errorf("calls 3, 4 = %+v, %+v; want 1 and 2 inserted", got[3], got[4])
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		// The waiting calls of three accounts share appends one round
		// of the accounts at a time: 111, 222 and 333, then 111 and 222.
		if st.appends != 3 {
			t.Errorf("%d appends (sizes %v); want 3: the first call, then the %d waiting ones in two rounds of the accounts", st.appends, st.sizes, len(calls))
		}
	})
}

// The waiting Submit calls of one account share one append.
func TestSubmitsOfOneAccountShareOneAppend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &gatedEach{MemStore: audittest.NewMemStore(), gate: make(chan struct{})}
		p := New(Config{Store: st, MaxDelay: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Run(ctx)
		errs := make(chan error, 11)
		go func() { _, err := p.Submit(t.Context(), acctRecs("111111111111", 0, 1)...); errs <- err }()
		synctest.Wait()
		for i := range 10 {
			go func() { _, err := p.Submit(t.Context(), acctRecs("111111111111", 10+i*3, 3)...); errs <- err }()
		}
		synctest.Wait()
		close(st.gate)
		for range 11 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.appends != 2 {
			t.Errorf("%d appends (sizes %v); want 2: the first call, then the 10 waiting together", st.appends, st.sizes)
		}
	})
}

// An account's backlog does not hold back another account: the writer
// takes the lanes in turn, so the other account's record is in the first
// batch after the one being written, however many the first account
// queued. Admission refuses the flooding account and admits the other.
func TestLanesAreFairBetweenAccounts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		submit func(p *Pipeline, rs []audit.Record) error
	}{
		{"Submit", func(p *Pipeline, rs []audit.Record) error {
			_, err := p.Submit(context.Background(), rs...)
			return err
		}},
		{"Commit", func(p *Pipeline, rs []audit.Record) error { return p.Commit(context.Background(), rs...) }},
		{"Enqueue", func(p *Pipeline, rs []audit.Record) error { return p.Enqueue(context.Background(), rs...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := &gatedEach{MemStore: audittest.NewMemStore(), gate: make(chan struct{}, 3)}
				defer func() { close(st.gate) }()
				p := New(Config{Store: st, MaxBatch: 10, MaxDelay: time.Millisecond, QueueSize: 64, AccountMaxCalls: 8})
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				go p.Run(ctx)
				const flooder, other = "111111111111", "222222222222"
				// The flooder: 8 admitted calls (its share), and a
				// backlog of 32 more submissions in its lane.
				for i := range 40 {
					release, err := p.Admit(flooder, true)
					if (err == nil) != (i < 8) {
						t.Fatalf("Admit(flooder) #%d = %v; want the first 8 admitted, then Throttling", i, err)
					}
					go func() {
						p.Submit(context.Background(), acctRecs(flooder, i*10, 10)...)
						if release != nil {
							release()
						}
					}()
				}
				synctest.Wait()
				if err := admitErr(p.Admit(flooder, true)); audit.ErrorCode(err) != audit.CodeThrottling {
					t.Errorf("Admit(flooder) = %v; want Throttling", err)
				}
				if err := admitErr(p.Admit(other, true)); err != nil {
					t.Errorf("Admit(other) = %v; want nil: its share is unused", err)
				}
				done := make(chan error, 1)
				go func() { done <- tc.submit(p, acctRecs(other, 0, 1)) }()
				synctest.Wait()
				// Let three appends through: the one under way, at most
				// one more of the flooder's lane (whose turn it may be),
				// then the other account's turn.
				for range 3 {
					st.gate <- struct{}{}
				}
				synctest.Wait()
				if tc.name != "Enqueue" {
					select {
					case err := <-done:
						if err != nil {
							t.Fatal(err)
						}
					default:
						t.Fatal("the other account's call still waits after three appends of the flooder's 40 calls")
					}
				}
				if page, _ := st.Lookup(t.Context(), audit.Query{Account: other, Limit: 10}); len(page.Records) != 1 {
					t.Errorf("the other account's record is not stored after three appends (store holds %d of it)", len(page.Records))
				}
			})
		})
	}
}

// Admit bounds each account's calls in flight and queued records, and,
// when the calls of all accounts reach QueueSize, refuses the accounts
// holding an equal share or more while admitting the others; releasing
// an admission gives it back.
func TestAdmit(t *testing.T) {
	const a, b, c = "111111111111", "222222222222", "333333333333"
	admit := func(p *Pipeline, acct string, n int) (releases []func()) {
		t.Helper()
		for i := range n {
			r, err := p.Admit(acct, i%2 == 0)
			if err != nil {
				t.Fatalf("Admit(%s) #%d = %v; want admitted", acct, i, err)
			}
			releases = append(releases, r)
		}
		return releases
	}
	refused := func(p *Pipeline, acct string, write bool) {
		t.Helper()
		if err := admitErr(p.Admit(acct, write)); audit.ErrorCode(err) != audit.CodeThrottling {
			t.Errorf("Admit(%s, write=%t) = %v; want Throttling", acct, write, err)
		}
	}
	t.Run("calls of one account", func(t *testing.T) {
		p := New(Config{Store: &fakeStore{}, QueueSize: 100, AccountMaxCalls: 5})
		rs := admit(p, a, 5)
		refused(p, a, true)
		refused(p, a, false) // reads count too
		admit(p, b, 5)       // another account is not concerned
		rs[0]()
		rs[0]() // a second release changes nothing
		admit(p, a, 1)
		refused(p, a, false)
	})
	t.Run("records queued by one account", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := &gatedEach{MemStore: audittest.NewMemStore(), gate: make(chan struct{})}
			p := New(Config{Store: st, MaxBatch: 100, AccountQueueRecords: 1000})
			ctx, cancel := context.WithCancel(t.Context())
			defer func() { close(st.gate); cancel() }()
			go p.Run(ctx)
			// The writer takes 100 and blocks; 1000 more wait in a's lane.
			for i := range 11 {
				p.Enqueue(t.Context(), acctRecs(a, i*100, 100)...)
				synctest.Wait()
			}
			refused(p, a, false)
			admit(p, b, 1)
			// A responder (b) importing a's records is refused while a's
			// share is queued; its own records, and c's, are not
			// (AdmitRecords).
			if err := p.AdmitRecords(b, acctRecs(a, 5000, 3)); audit.ErrorCode(err) != audit.CodeThrottling {
				t.Errorf("AdmitRecords(b, a's records) = %v; want Throttling", err)
			}
			mixed := append(acctRecs(c, 0, 2), acctRecs(a, 6000, 1)...)
			if err := p.AdmitRecords(b, mixed); audit.ErrorCode(err) != audit.CodeThrottling {
				t.Errorf("AdmitRecords(b, c's and a's records) = %v; want Throttling", err)
			}
			if err := p.AdmitRecords(b, append(acctRecs(b, 0, 2), acctRecs(c, 0, 2)...)); err != nil {
				t.Errorf("AdmitRecords(b, b's and c's records) = %v; want nil", err)
			}
			if err := p.AdmitRecords(a, acctRecs(a, 7000, 2)); err != nil {
				t.Errorf("AdmitRecords(a, a's records) = %v; want nil (Admit's to refuse)", err)
			}
		})
	})
	t.Run("fair share of the whole queue", func(t *testing.T) {
		p := New(Config{Store: &fakeStore{}, QueueSize: 12, AccountMaxCalls: 10})
		admit(p, a, 10)
		admit(p, b, 2) // 12 in flight: the queue is full
		refused(p, a, true)
		// b holds 2, less than an equal share (12/2): admitted.
		admit(p, b, 3)
		// c holds nothing: admitted.
		admit(p, c, 1)
		// b now holds 5 >= 15/3: refused.
		refused(p, b, true)
	})
	t.Run("disk full refuses writes only", func(t *testing.T) {
		p := New(Config{Store: &fakeStore{}, DiskDir: t.TempDir(), MinFreeBytes: 1 << 62})
		if err := admitErr(p.Admit(a, true)); audit.ErrorCode(err) != audit.CodeServiceUnavailable {
			t.Errorf("write = %v; want ServiceUnavailable", err)
		}
		if err := admitErr(p.Admit(a, false)); err != nil {
			t.Errorf("read = %v; want admitted", err)
		}
	})
}

// A full lane holds back the Commit calls of its account only: with the
// store stalled and one account's lane full, Commit calls of that account
// wait (backpressure), while another account's Commit calls, journaled
// in the same groups, return.
func TestJournalBackpressureIsPerAccount(t *testing.T) {
	st := &gatedEach{MemStore: audittest.NewMemStore(), gate: make(chan struct{})}
	var once sync.Once
	open := func() { once.Do(func() { close(st.gate) }) }
	t.Cleanup(open)
	p, _, _ := openJournaled(t, Config{Store: st, JournalDir: t.TempDir(), QueueSize: 3, MaxBatch: 1})
	const flooder, other = "111111111111", "222222222222"
	// The writer takes one and blocks in the store; three fill the lane.
	for i := range 4 {
		if err := p.Commit(t.Context(), acctRecs(flooder, i, 1)...); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, "the writer to take the first record", func() bool { return p.queue.len() == 0 })
		}
	}
	var waiting sync.WaitGroup
	for i := range 5 {
		waiting.Add(1)
		go func() {
			defer waiting.Done()
			if err := p.Commit(context.Background(), acctRecs(flooder, 10+i, 1)...); err != nil {
				t.Error(err)
			}
		}()
	}
	// The other account's calls go through (up to its own lane's room:
	// the store is stalled), one after another and journaled together
	// with the flooder's blocked ones.
	for i := range 3 {
		if err := p.Commit(t.Context(), acctRecs(other, i, 1)...); err != nil {
			t.Fatal(err)
		}
	}
	open()
	waiting.Wait()
	waitFor(t, "every record stored", func() bool {
		a, _ := st.Lookup(t.Context(), audit.Query{Account: flooder, Limit: 100})
		b, _ := st.Lookup(t.Context(), audit.Query{Account: other, Limit: 100})
		return len(a.Records) == 9 && len(b.Records) == 3
	})
}
