// Adapts etcd raft's printf logger to slog, in one place.
package store

import (
	"fmt"
	"log/slog"
)

type raftLogger struct{ l *slog.Logger }

func newRaftLogger(l *slog.Logger) raftLogger { return raftLogger{l.With("component", "raft")} }

func (r raftLogger) Debug(v ...interface{})              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...interface{})   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...interface{})               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...interface{})    { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...interface{})            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...interface{}) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...interface{})              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...interface{})   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...interface{})              { r.Panic(v...) }
func (r raftLogger) Fatalf(f string, v ...interface{})   { r.Panicf(f, v...) }
func (r raftLogger) Panic(v ...interface{})              { s := fmt.Sprint(v...); r.l.Error(s); panic(s) }
func (r raftLogger) Panicf(f string, v ...interface{}) {
	s := fmt.Sprintf(f, v...)
	r.l.Error(s)
	panic(s)
}
