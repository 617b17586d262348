package treeverify

import (
	"context"
	"sync"
)

// pool runs jobs on a fixed number of workers. Jobs may push more jobs;
// run returns when every pushed job has finished or ctx is cancelled (then
// the jobs still queued are dropped). Jobs are taken last in, first out, so
// a directory walk goes depth first and the queue stays small.
type pool struct {
	mu      sync.Mutex
	cond    sync.Cond
	jobs    []func(*worker)
	pending int // pushed and not finished
	stopped bool
}

// worker is the per-goroutine state jobs use: buffers and hash objects.
type worker struct {
	buf     []byte
	hashers hasherSet
}

const readBlock = 256 << 10

func newPool() *pool {
	p := &pool{}
	p.cond.L = &p.mu
	return p
}

func (p *pool) push(j func(*worker)) {
	p.mu.Lock()
	p.jobs = append(p.jobs, j)
	p.pending++
	p.mu.Unlock()
	p.cond.Signal()
}

// run starts n workers and waits until the queue is done.
func (p *pool) run(ctx context.Context, n int) {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		p.cond.Broadcast()
	})
	defer stop()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			w := &worker{buf: make([]byte, readBlock)}
			for {
				p.mu.Lock()
				for len(p.jobs) == 0 && p.pending > 0 && !p.stopped {
					p.cond.Wait()
				}
				if p.pending == 0 || p.stopped {
					p.mu.Unlock()
					p.cond.Broadcast()
					return
				}
				j := p.jobs[len(p.jobs)-1]
				p.jobs[len(p.jobs)-1] = nil
				p.jobs = p.jobs[:len(p.jobs)-1]
				p.mu.Unlock()

				j(w)

				p.mu.Lock()
				p.pending--
				done := p.pending == 0
				p.mu.Unlock()
				if done {
					p.cond.Broadcast()
				}
			}
		})
	}
	wg.Wait()
}
