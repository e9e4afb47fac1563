package audit

import "time"

// The file lock orders the processes that share a log. Taking it and
// letting it go are two system calls of a batch's five; a busy log keeps it
// between batches instead, letting go once no batch has come for lockIdle,
// and after any batch once it has held the lock for lockHold, so another
// process sharing the file, woken whenever the lock is let go, gets turns.
const (
	lockIdle = time.Millisecond
	lockHold = 5 * time.Millisecond
)

// lock takes the file lock unless the log holds it from an earlier batch.
// The caller holds committing.
func (l *Log) lock() error {
	if l.unlock != nil {
		return nil
	}
	unlock, err := lockFile(l.f)
	if err != nil {
		return err
	}
	l.unlock, l.lockedAt = unlock, time.Now()
	return nil
}

// release lets the file lock go, if the log holds it. The caller holds
// committing.
func (l *Log) release() {
	if l.unlock != nil {
		l.unlock()
		l.unlock = nil
	}
}

// afterBatch keeps the file lock for the next batch, or lets it go: at
// once after a failed batch or once held for lockHold, else when lockIdle
// passes without another batch. The caller holds committing.
func (l *Log) afterBatch(ok bool) {
	now := time.Now()
	if !ok || now.Sub(l.lockedAt) >= lockHold {
		l.release()
		return
	}
	l.lastBatch = now
	if l.idle == nil {
		l.idle = time.AfterFunc(lockIdle, l.releaseIdle)
		return
	}
	l.idle.Reset(lockIdle)
}

// releaseIdle lets the file lock go if no batch came for lockIdle; a
// batch that came re-armed the timer.
func (l *Log) releaseIdle() {
	select {
	case l.committing <- struct{}{}:
	case <-l.shut: // Close holds committing and has let the lock go
		return
	}
	defer func() { <-l.committing }()
	if time.Since(l.lastBatch) >= lockIdle {
		l.release()
	}
}
