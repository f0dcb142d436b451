// Output of the key-value commands: table (for people) and the exact JSON
// documents of INTERFACES.md (for scripts). Pure formatting over an
// io.Writer, golden-tested in output_test.go.

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/rangekv/rangekv/router"
)

// Output formats (-o).
const (
	formatTable = "table"
	formatJSON  = "json"
)

// printer renders command results. w receives the result; warn receives
// warnings (stderr).
type printer struct {
	w, warn io.Writer
	json    bool
	hex     bool
	warned  bool
}

// str renders bytes for the chosen mode, warning once when JSON would
// have to replace bytes that are not UTF-8.
func (p *printer) str(b []byte) string {
	if !p.hex && p.json && !utf8.Valid(b) && !p.warned {
		p.warned = true
		if p.warn != nil {
			fmt.Fprintln(p.warn, "rangekv: warning: a key or value is not valid UTF-8; JSON shows its invalid bytes as U+FFFD; use --hex to see it exactly")
		}
	}
	return formatBytes(b, p.hex)
}

func (p *printer) emitJSON(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

type getJSON struct {
	Key   string  `json:"key"`
	Found bool    `json:"found"`
	Value *string `json:"value,omitempty"`
}

// printGet prints a get result. A missing key prints nothing in table
// mode (the caller reports "not found" on stderr and exits 1).
func (p *printer) printGet(key, value []byte, found bool) error {
	if p.json {
		doc := getJSON{Key: p.str(key), Found: found}
		if found {
			v := p.str(value)
			doc.Value = &v
		}
		return p.emitJSON(doc)
	}
	if !found {
		return nil
	}
	_, err := fmt.Fprintln(p.w, p.str(value))
	return err
}

type okJSON struct {
	Key string `json:"key"`
	OK  bool   `json:"ok"`
}

// printOK prints the result of a put or delete.
func (p *printer) printOK(key []byte) error {
	if p.json {
		return p.emitJSON(okJSON{Key: p.str(key), OK: true})
	}
	_, err := fmt.Fprintln(p.w, "OK")
	return err
}

type casJSON struct {
	Key     string  `json:"key"`
	Swapped bool    `json:"swapped"`
	Found   bool    `json:"found"`
	Value   *string `json:"value,omitempty"`
}

// printCAS prints whether the swap happened and the key's value after it.
func (p *printer) printCAS(key []byte, r router.CASResult) error {
	if p.json {
		doc := casJSON{Key: p.str(key), Swapped: r.Swapped, Found: r.Found}
		if r.Found {
			v := p.str(r.Value)
			doc.Value = &v
		}
		return p.emitJSON(doc)
	}
	if r.Found {
		_, err := fmt.Fprintf(p.w, "swapped: %t\nvalue: %s\n", r.Swapped, p.str(r.Value))
		return err
	}
	_, err := fmt.Fprintf(p.w, "swapped: %t\nfound: false\n", r.Swapped)
	return err
}

type incrJSON struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

// printIncr prints a counter's new value.
func (p *printer) printIncr(key []byte, n int64) error {
	if p.json {
		return p.emitJSON(incrJSON{Key: p.str(key), Value: n})
	}
	_, err := fmt.Fprintln(p.w, strconv.FormatInt(n, 10))
	return err
}

type pairJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type scanJSON struct {
	Pairs []pairJSON `json:"pairs"`
}

// printScan prints pairs in key order: KEY<TAB>VALUE lines, or the JSON
// document (with "pairs": [] when there are none).
func (p *printer) printScan(pairs []router.KeyValue) error {
	if p.json {
		doc := scanJSON{Pairs: make([]pairJSON, 0, len(pairs))}
		for _, kv := range pairs {
			doc.Pairs = append(doc.Pairs, pairJSON{Key: p.str(kv.Key), Value: p.str(kv.Value)})
		}
		return p.emitJSON(doc)
	}
	for _, kv := range pairs {
		if _, err := fmt.Fprintf(p.w, "%s\t%s\n", p.str(kv.Key), p.str(kv.Value)); err != nil {
			return err
		}
	}
	return nil
}
