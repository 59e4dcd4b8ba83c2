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
		if st.appends != 2 {
			t.Errorf("%d appends (sizes %v); want 2: the first call, then the %d waiting ones together", st.appends, st.sizes, len(calls))
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
				p := New(Config{Store: st, MaxBatch: 10, MaxDelay: time.Millisecond, QueueSize: 64, AccountQueueSize: 8})
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				go p.Run(ctx)
				const flooder, other = "111111111111", "222222222222"
				// The flooder fills its lane (and more, blocked).
				for i := range 40 {
					go p.Submit(context.Background(), acctRecs(flooder, i*10, 10)...)
				}
				synctest.Wait()
				if err := p.Admit(flooder, true); audit.ErrorCode(err) != audit.CodeThrottling {
					t.Errorf("Admit(flooder) = %v; want Throttling", err)
				}
				if err := p.Admit(other, true); err != nil {
					t.Errorf("Admit(other) = %v; want nil: its lane is empty", err)
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
