package store

import "sync"

// LogEntry is one log line (Jesse's {'id','session_id','timestamp','message'}).
type LogEntry struct {
	// Seq numbers entries of both logs in the order they were added,
	// from 1; it replaces Jesse's random id.
	Seq uint64
	// SessionID is the session id at the time of logging.
	SessionID string
	// Timestamp is the time of the entry in Unix milliseconds.
	Timestamp int64
	// Message is the text.
	Message string
}

// logsState guards both logs and their sequence with one mutex.
type logsState struct {
	mu           sync.Mutex
	seq          uint64
	info, errors bounded[LogEntry]
}

// AddInfoLog appends to the info log, dropping the oldest entry beyond
// Config.LogCapacity, and returns the entry.
func (s *Store) AddInfoLog(ts int64, message string) LogEntry {
	return s.addLog(false, ts, message)
}

// AddErrorLog appends to the error log, dropping the oldest entry beyond
// Config.LogCapacity, and returns the entry.
func (s *Store) AddErrorLog(ts int64, message string) LogEntry {
	return s.addLog(true, ts, message)
}

func (s *Store) addLog(isError bool, ts int64, message string) LogEntry {
	st := s.state()
	st.app.mu.RLock()
	session := st.app.app.SessionID
	st.app.mu.RUnlock()
	l := &st.logs
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e := LogEntry{Seq: l.seq, SessionID: session, Timestamp: ts, Message: message}
	if isError {
		l.errors.push(e)
	} else {
		l.info.push(e)
	}
	return e
}

// InfoLogs returns a copy of the newest n info entries, oldest first; all
// of them when n ≤ 0.
func (s *Store) InfoLogs(n int) []LogEntry {
	l := &s.state().logs
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info.lastN(n)
}

// ErrorLogs returns a copy of the newest n error entries, oldest first; all
// of them when n ≤ 0.
func (s *Store) ErrorLogs(n int) []LogEntry {
	l := &s.state().logs
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors.lastN(n)
}
