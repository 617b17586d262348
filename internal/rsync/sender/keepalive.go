package sender

import (
	"sync"
	"time"
)

// startKeepAlive sends an empty data frame (understood by every rsync
// version as a keep-alive) whenever nothing was written for half the I/O
// timeout, so that a client busy with its own side (e.g. a generator
// checking a big tree) does not time out. It returns a function that
// stops it and waits for it to end.
func (s *session) startKeepAlive() func() {
	if s.timeout <= 0 {
		return func() {}
	}
	lull := (s.timeout + time.Second) / 2
	tick := min(lull/4, time.Second)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				last := time.Unix(0, s.conn.lastWrite.Load())
				if time.Since(last) >= lull {
					if err := s.out.KeepAlive(false); err != nil {
						return
					}
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
