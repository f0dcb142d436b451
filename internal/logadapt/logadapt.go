// The two adapters: Raft (etcd raft's Logger) and Pebble (Pebble's Logger).

package logadapt

import (
	"fmt"
	"log/slog"
)

// Raft is an etcd raft Logger writing to slog. Raft's info messages
// (elections, leader changes) go to Debug: there is one group per range.
type Raft struct{ L *slog.Logger }

// NewRaft tags l with component=raft.
func NewRaft(l *slog.Logger) Raft { return Raft{l.With("component", "raft")} }

func (r Raft) Debug(v ...interface{})              { r.L.Debug(fmt.Sprint(v...)) }
func (r Raft) Debugf(f string, v ...interface{})   { r.L.Debug(fmt.Sprintf(f, v...)) }
func (r Raft) Info(v ...interface{})               { r.L.Debug(fmt.Sprint(v...)) }
func (r Raft) Infof(f string, v ...interface{})    { r.L.Debug(fmt.Sprintf(f, v...)) }
func (r Raft) Warning(v ...interface{})            { r.L.Warn(fmt.Sprint(v...)) }
func (r Raft) Warningf(f string, v ...interface{}) { r.L.Warn(fmt.Sprintf(f, v...)) }
func (r Raft) Error(v ...interface{})              { r.L.Error(fmt.Sprint(v...)) }
func (r Raft) Errorf(f string, v ...interface{})   { r.L.Error(fmt.Sprintf(f, v...)) }
func (r Raft) Fatal(v ...interface{})              { r.Panic(v...) }
func (r Raft) Fatalf(f string, v ...interface{})   { r.Panicf(f, v...) }

// Panic logs and panics (raft's invariants are broken).
func (r Raft) Panic(v ...interface{}) { s := fmt.Sprint(v...); r.L.Error(s); panic(s) }

// Panicf logs and panics.
func (r Raft) Panicf(f string, v ...interface{}) {
	s := fmt.Sprintf(f, v...)
	r.L.Error(s)
	panic(s)
}

// Pebble is a Pebble Logger writing to slog with component=pebble.
type Pebble struct{ L *slog.Logger }

func (p Pebble) Infof(format string, args ...interface{}) {
	p.L.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p Pebble) Errorf(format string, args ...interface{}) {
	p.L.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf panics: Pebble calls it when the engine cannot go on.
func (p Pebble) Fatalf(format string, args ...interface{}) { panic(fmt.Sprintf(format, args...)) }
