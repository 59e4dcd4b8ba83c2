package lake

// Lake queries share the machine with everything else cairn does, above
// all LookupEvents of every account: ten cross joins of one account took
// another account's LookupEvents p95 from 35 to 216 ms. So a query runs
// only when the scheduler admits it, and then on a low-priority thread:
//
//   - MaxRunningQueries queries run at once in the whole server (default
//     2), at most MaxRunningQueriesPerAccount of them for one account
//     (default 1), so one account's queries cannot keep another's waiting
//     (they stay QUEUED, first come first served among the accounts that
//     may run one);
//   - Lake's DuckDB runs with 1 thread by default (Options.Threads), so a
//     query executes on the thread that runs it, and that thread runs at
//     the lowest CPU priority (nice 19, Linux): a running query takes the
//     CPU the rest of the server leaves;
//   - MaxConcurrentQueries (default 10, as AWS) caps an account's queued
//     and running queries: StartQuery beyond it is refused with
//     MaxConcurrentQueriesException;
//   - QueryTimeout ends a query as TIMED_OUT, queue time included.

// admitLocked admits waiting queries, oldest first, while slots are free
// and their account is below its share; l.mu is held.
func (l *Lake) admitLocked() {
	if l.ckptBlocked { // checkpoint.go
		return
	}
	kept := l.waiting[:0]
	for _, q := range l.waiting {
		if l.active < l.opts.MaxRunningQueries && l.activeBy[q.Account] < l.opts.MaxRunningQueriesPerAccount {
			l.active++
			l.activeBy[q.Account]++
			q.slot = true
			close(q.admitted)
			continue
		}
		kept = append(kept, q)
	}
	clear(l.waiting[len(kept):])
	l.waiting = kept
}

// release gives back q's slot, or takes it out of the queue, and admits
// the next; l.mu is held.
func (l *Lake) release(q *query) {
	if q.slot {
		q.slot = false
		l.active--
		if l.activeBy[q.Account]--; l.activeBy[q.Account] == 0 {
			delete(l.activeBy, q.Account)
		}
	} else {
		for i, w := range l.waiting {
			if w == q {
				l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
				break
			}
		}
	}
	l.admitLocked()
}
