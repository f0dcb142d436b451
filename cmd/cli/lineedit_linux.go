// A minimal line editor for the shell on a Linux terminal: the terminal
// is put in non-canonical mode (no echo, no signals) only while a line is
// read; Tab completes command names, Up/Down walk the history, Backspace,
// Ctrl-U (erase line), Ctrl-C (discard line) and Ctrl-D (end, on an empty
// line) work. Output while a command runs is untouched.

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"unicode/utf8"
	"unsafe"
)

type termReader struct {
	f        *os.File
	in       *bufio.Reader
	out      io.Writer
	complete func(line string) []string
	history  *[]string
	cooked   syscall.Termios
}

func ioctlTermios(fd uintptr, req uintptr, t *syscall.Termios) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(t))); e != 0 {
		return e
	}
	return nil
}

func newTermReader(f *os.File, out io.Writer, complete func(string) []string) (*termReader, error) {
	r := &termReader{f: f, in: bufio.NewReader(f), out: out, complete: complete}
	if err := ioctlTermios(f.Fd(), syscall.TCGETS, &r.cooked); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *termReader) raw() error {
	t := r.cooked
	t.Lflag &^= syscall.ICANON | syscall.ECHO | syscall.ISIG | syscall.IEXTEN
	t.Iflag &^= syscall.IXON
	t.Cc[syscall.VMIN], t.Cc[syscall.VTIME] = 1, 0
	return ioctlTermios(r.f.Fd(), syscall.TCSETS, &t)
}

func (r *termReader) restore() { _ = ioctlTermios(r.f.Fd(), syscall.TCSETS, &r.cooked) }

func (r *termReader) close() { r.restore() }

func (r *termReader) readLine(prompt string) (string, error) {
	if err := r.raw(); err != nil {
		return "", err
	}
	defer r.restore()
	var hist []string
	if r.history != nil {
		hist = *r.history
	}
	pos := len(hist) // history position; len(hist) is the line being typed
	var draft string
	buf := ""
	redraw := func() { fmt.Fprintf(r.out, "\r\x1b[K%s%s", prompt, buf) }
	redraw()
	for {
		c, err := r.in.ReadByte()
		if err != nil {
			return "", err
		}
		switch {
		case c == '\r' || c == '\n':
			fmt.Fprint(r.out, "\r\n")
			return buf, nil
		case c == 3: // Ctrl-C
			fmt.Fprint(r.out, "^C\r\n")
			buf, pos = "", len(hist)
			redraw()
		case c == 4: // Ctrl-D
			if buf == "" {
				fmt.Fprint(r.out, "\r\n")
				return "", io.EOF
			}
		case c == 0x7f || c == 8: // Backspace
			if buf != "" {
				_, n := utf8.DecodeLastRuneInString(buf)
				buf = buf[:len(buf)-n]
				redraw()
			}
		case c == 0x15: // Ctrl-U
			buf = ""
			redraw()
		case c == '\t':
			cands := r.complete(buf)
			switch {
			case len(cands) == 1:
				buf = cands[0]
			case len(cands) > 1:
				if p := commonPrefix(cands); len(p) > len(buf) {
					buf = p
				} else {
					fmt.Fprint(r.out, "\r\n")
					for _, c := range cands {
						f := strings.Fields(c)
						fmt.Fprintf(r.out, "%s  ", f[len(f)-1])
					}
					fmt.Fprint(r.out, "\r\n")
				}
			}
			redraw()
		case c == 0x1b: // escape sequence: arrows
			b1, _ := r.in.ReadByte()
			if b1 != '[' && b1 != 'O' {
				continue
			}
			b2, _ := r.in.ReadByte()
			switch b2 {
			case 'A': // Up
				if pos > 0 {
					if pos == len(hist) {
						draft = buf
					}
					pos--
					buf = hist[pos]
					redraw()
				}
			case 'B': // Down
				if pos < len(hist) {
					pos++
					if pos == len(hist) {
						buf = draft
					} else {
						buf = hist[pos]
					}
					redraw()
				}
			}
		case c >= 0x20:
			buf += string(c)
			if c < 0x80 {
				fmt.Fprintf(r.out, "%c", c)
			} else {
				redraw()
			}
		}
	}
}
