//go:build !linux

// Without a line editor: the shell reads plain lines.

package main

import (
	"errors"
	"io"
	"os"
)

type termReader struct {
	history *[]string
}

func newTermReader(*os.File, io.Writer, func(string) []string) (*termReader, error) {
	return nil, errors.New("no line editor on this platform")
}

func (r *termReader) readLine(string) (string, error) { return "", io.EOF }
func (r *termReader) close()                          {}
