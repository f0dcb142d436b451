package placement

import (
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const failedPrecondition = codes.FailedPrecondition

func statusErr(c codes.Code, format string, args ...any) error {
	return status.Errorf(c, format, args...)
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...interface{}) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...interface{}) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...interface{}) { panic(fmt.Sprintf(format, args...)) }

type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...interface{})              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...interface{})   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...interface{})               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...interface{})    { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...interface{})            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...interface{}) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...interface{})              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...interface{})   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...interface{})              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...interface{})   { panic(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...interface{})              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...interface{})   { panic(fmt.Sprintf(f, v...)) }
