// rangekv shell: an interactive prompt that runs the same commands, with
// the global flags of its own invocation, an in-memory history and
// command-name completion (Tab on a terminal; unique prefixes anywhere).

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

const shellHelp = `Type a command as you would after 'rangekv' (put k v, get k, cluster status,
range list, ...); the global flags of 'rangekv shell' apply to every line,
and a line may add its own (-o json get k). Command names may be shortened
to a unique prefix (cl st = cluster status); on a terminal, Tab completes
them and Up/Down walk the history.

Shell commands:
  help [COMMAND]   the help of rangekv or of a command
  history          the lines typed so far
  !!  !N           run the last line again, or line N of history
  exit, quit, ^D   leave the shell`

func (a *app) shellCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "shell",
		Short: "Interactive prompt for all commands, with history and completion",
		Long: `Start an interactive prompt that runs rangekv commands, one a line, until
exit or end of input. Lines can also be piped in (no prompt is shown when
the input is not a terminal); the shell exits with the code of the last
command that failed, or 0.

` + shellHelp,
		Example: `  rangekv --placement 127.0.0.1:7401 shell
  printf 'put a 1\nget a\n' | rangekv shell`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if a.shellDepth > 0 {
				return usageErrorf("shell: already in the shell")
			}
			return a.runShell(cmd.Context(), cmd.Root())
		}),
	}
}

// lineReader reads one line of input; io.EOF ends the shell.
type lineReader interface {
	readLine(prompt string) (string, error)
	close()
}

// plainReader reads lines without editing (pipes, files, tests).
type plainReader struct {
	sc     *bufio.Scanner
	out    io.Writer
	prompt bool
}

func (p *plainReader) readLine(prompt string) (string, error) {
	if p.prompt {
		fmt.Fprint(p.out, prompt)
	}
	if !p.sc.Scan() {
		if err := p.sc.Err(); err != nil {
			return "", err
		}
		return "", io.EOF
	}
	return p.sc.Text(), nil
}

func (p *plainReader) close() {}

func (a *app) runShell(ctx context.Context, root *cobra.Command) error {
	names := commandNames(root)
	var in lineReader
	if f, ok := a.stdin.(*os.File); ok && isTerminal(f) && isTerminal(a.stdout) && a.shellDepth == 0 {
		if r, err := newTermReader(f, a.stdout, func(line string) []string { return completeLine(names, line) }); err == nil {
			in = r
		}
	}
	if in == nil {
		sc := bufio.NewScanner(a.stdin)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		in = &plainReader{sc: sc, out: a.stdout, prompt: isTerminal(a.stdin)}
	}
	defer in.close()
	if _, ok := in.(*plainReader); !ok || isTerminal(a.stdin) {
		fmt.Fprintf(a.stdout, "rangekv shell (%s). Type help for help, exit to leave.\n", a.modeWords())
	}
	var history []string
	if tr, ok := in.(*termReader); ok {
		tr.history = &history
	}
	last := exitOK
	for ctx.Err() == nil {
		line, err := in.readLine("rangekv> ")
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("shell: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		typed := line
		line, err = expandHistory(line, history)
		if err != nil {
			fmt.Fprintln(a.stderr, "rangekv: "+err.Error())
			last = exitUsage
			continue
		}
		if line != typed {
			fmt.Fprintln(a.stdout, line) // what !! or !N runs
		}
		history = append(history, line)
		args, err := splitLine(line)
		if err != nil {
			fmt.Fprintln(a.stderr, "rangekv: "+err.Error())
			last = exitUsage
			continue
		}
		switch args[0] {
		case "exit", "quit":
			return shellExit(last)
		case "history":
			for i, h := range history {
				fmt.Fprintf(a.stdout, "%4d  %s\n", i+1, h)
			}
			continue
		case "help":
			args = append(args[1:], "--help")
		}
		if code := a.runShellLine(ctx, expandNames(root, args)); code != exitOK {
			last = code
		}
	}
	return shellExit(last)
}

func shellExit(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code, err: fmt.Errorf("shell: the last failed command exited %d", code)}
}

// modeWords says which cluster the shell talks to.
func (a *app) modeWords() string {
	switch {
	case len(a.g.cluster.placement) > 0:
		return "placement " + strings.Join(a.g.cluster.placement, ",")
	case len(a.g.cluster.stores) > 0:
		return "static mode, stores " + strings.Join(a.g.cluster.stores, ",")
	}
	return "no cluster given: set --placement for the cluster commands"
}

// runShellLine runs one command line with the shell's global flags and
// returns its exit code (errors are printed by execute).
func (a *app) runShellLine(ctx context.Context, args []string) int {
	sub := newApp(a.stdout, a.stderr)
	sub.newClient, sub.newAdmin, sub.now, sub.pollInterval = a.newClient, a.newAdmin, a.now, a.pollInterval
	sub.shellDepth = a.shellDepth + 1
	// Ctrl-C interrupts the command, not the shell.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	return sub.execute(ctx, append(a.shellGlobals(args), args...))
}

// shellGlobals renders the shell's own global flags, leaving out the
// cluster flags when the line names a cluster itself.
func (a *app) shellGlobals(line []string) []string {
	var out []string
	own := false
	for _, t := range line {
		own = own || strings.HasPrefix(t, "--placement") || strings.HasPrefix(t, "--stores")
	}
	if !own {
		if len(a.g.cluster.placement) > 0 {
			out = append(out, "--placement", strings.Join(a.g.cluster.placement, ","))
		} else if len(a.g.cluster.stores) > 0 {
			out = append(out, "--stores", strings.Join(a.g.cluster.stores, ","))
		}
	}
	return append(out, "-o", a.g.output, "--hex="+strconv.FormatBool(a.g.hex), "--timeout", a.g.timeout.String())
}

// splitLine splits a command line into words: blanks separate them;
// single quotes keep everything literally; double quotes keep blanks and
// allow \" and \\; a backslash outside quotes escapes the next character.
func splitLine(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated \" quote")
			}
		case c == '\\' && i+1 < len(line):
			inWord = true
			i++
			cur.WriteByte(line[i])
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return out, nil
}

// expandHistory replaces a line of !! or !N by that history entry.
func expandHistory(line string, history []string) (string, error) {
	if !strings.HasPrefix(line, "!") {
		return line, nil
	}
	if line == "!!" {
		if len(history) == 0 {
			return "", fmt.Errorf("!!: no history yet")
		}
		return history[len(history)-1], nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 1 || n > len(history) {
		return "", fmt.Errorf("%s: no such history entry (see history)", line)
	}
	return history[n-1], nil
}

// cmdNames maps command paths to the names of their subcommands: "" →
// root's, "range" → range's.
type cmdNames map[string][]string

func commandNames(root *cobra.Command) cmdNames {
	out := cmdNames{}
	var walk func(prefix string, c *cobra.Command)
	walk = func(prefix string, c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "completion" || (prefix == "" && sub.Name() == "help") {
				continue
			}
			out[prefix] = append(out[prefix], sub.Name())
			p := strings.TrimSpace(prefix + " " + sub.Name())
			walk(p, sub)
		}
		sort.Strings(out[prefix])
	}
	walk("", root)
	out[""] = append(out[""], "exit", "help", "history", "quit")
	sort.Strings(out[""])
	return out
}

// expandNames replaces each leading command word that is a unique prefix
// of a command name (or alias) by that name: "cl st" → "cluster status".
func expandNames(root *cobra.Command, args []string) []string {
	out := append([]string(nil), args...)
	c := root
	for i := 0; i < len(out); i++ {
		if strings.HasPrefix(out[i], "-") {
			return out
		}
		var match *cobra.Command
		n := 0
		for _, sub := range c.Commands() {
			if sub.Name() == out[i] || sub.HasAlias(out[i]) {
				match, n = sub, 1
				break
			}
			if strings.HasPrefix(sub.Name(), out[i]) {
				match = sub
				n++
			}
		}
		if n != 1 {
			return out
		}
		out[i] = match.Name()
		if !match.HasSubCommands() {
			return out
		}
		c = match
	}
	return out
}

// completeLine returns the candidate lines for Tab: the line with its last
// word completed to each command name it is a prefix of.
func completeLine(names cmdNames, line string) []string {
	words := strings.Fields(line)
	trailing := strings.HasSuffix(line, " ")
	var done []string
	var partial string
	if trailing || len(words) == 0 {
		done = words
	} else {
		done, partial = words[:len(words)-1], words[len(words)-1]
	}
	for _, w := range done {
		if strings.HasPrefix(w, "-") {
			return nil // past the command words
		}
	}
	cands := names[strings.Join(done, " ")]
	var out []string
	for _, n := range cands {
		if strings.HasPrefix(n, partial) {
			out = append(out, strings.Join(append(append([]string(nil), done...), n), " ")+" ")
		}
	}
	return out
}

// commonPrefix returns the longest common prefix of ss.
func commonPrefix(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	p := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasPrefix(s, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}
