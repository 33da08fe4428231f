package store

import (
	"fmt"
	"maps"
	"sync"
)

// AppState is the application state of the process (Jesse's AppState
// without its database rows).
type AppState struct {
	// Time is the process clock in Unix milliseconds: the simulated time
	// in a backtest, the wall clock in live trading.
	Time int64
	// StartingTime and EndingTime bound the session, in Unix milliseconds.
	StartingTime, EndingTime int64
	// SessionID identifies the session.
	SessionID string
	// SessionInfo is free-form information about the session.
	SessionInfo map[string]string
}

// DailyBalance is the balance of the account at one time of a day.
type DailyBalance struct {
	Timestamp int64   // Unix milliseconds
	Balance   float64 // in the settlement currency
}

// appState guards AppState and the daily balance history with one mutex.
type appState struct {
	mu    sync.RWMutex
	app   AppState
	daily bounded[DailyBalance]
}

// App returns a copy of the application state.
func (s *Store) App() AppState {
	a := &s.state().app
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := a.app
	out.SessionInfo = maps.Clone(a.app.SessionInfo)
	return out
}

// SetTime sets the process clock (Unix milliseconds).
func (s *Store) SetTime(ms int64) {
	a := &s.state().app
	a.mu.Lock()
	a.app.Time = ms
	a.mu.Unlock()
}

// Time returns the process clock (Unix milliseconds).
func (s *Store) Time() int64 {
	a := &s.state().app
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.app.Time
}

// SetSession sets the session id and information; info is copied.
func (s *Store) SetSession(id string, info map[string]string) {
	info = maps.Clone(info)
	a := &s.state().app
	a.mu.Lock()
	a.app.SessionID, a.app.SessionInfo = id, info
	a.mu.Unlock()
}

// SetTimeRange sets the starting and ending times of the session (Unix
// milliseconds); an ending time of 0 means open-ended.
func (s *Store) SetTimeRange(start, end int64) error {
	if start < 0 || end < 0 || (end != 0 && end < start) {
		return fmt.Errorf("store: set time range: %w: [%d, %d]", ErrInvalid, start, end)
	}
	a := &s.state().app
	a.mu.Lock()
	a.app.StartingTime, a.app.EndingTime = start, end
	a.mu.Unlock()
	return nil
}

// AddDailyBalance appends to the daily balance history, dropping the oldest
// entry beyond Config.DailyBalanceCapacity.
func (s *Store) AddDailyBalance(ts int64, balance float64) error {
	if !finite(balance) {
		return fmt.Errorf("store: add daily balance: %w: balance %v", ErrInvalid, balance)
	}
	a := &s.state().app
	a.mu.Lock()
	a.daily.push(DailyBalance{ts, balance})
	a.mu.Unlock()
	return nil
}

// DailyBalances returns a copy of the daily balance history, oldest first.
func (s *Store) DailyBalances() []DailyBalance {
	a := &s.state().app
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.daily.lastN(0)
}
