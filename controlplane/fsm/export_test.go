package fsm

// SetBootID makes the state machines opened from now on see the host's boot
// as id, until the returned function puts the real one back.
func SetBootID(id string) (restore func()) {
	old := bootID
	bootID = func() string { return id }
	return func() { bootID = old }
}

// Abandon drops the database as a crash of the process would: nothing is
// synced and the marker of the open database stays.
func (f *FSM) Abandon() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db != nil {
		f.db.Close()
		f.db = nil
	}
}
