package sqlindex

// QueuedPuts is the number of Puts waiting for a batch.
func (x *DB) QueuedPuts() int {
	x.gmu.Lock()
	defer x.gmu.Unlock()
	return len(x.queue)
}
