package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/router"
)

func TestSplitLine(t *testing.T) {
	cases := []struct {
		line string
		want []string
		err  bool
	}{
		{"put a 1", []string{"put", "a", "1"}, false},
		{"  put   'two words'  \"x \\\"y\\\"\"  ", []string{"put", "two words", `x "y"`}, false},
		{`put a\ b ''`, []string{"put", "a b", ""}, false},
		{"put 'open", nil, true},
		{`put "open`, nil, true},
	}
	for _, c := range cases {
		got, err := splitLine(c.line)
		if (err != nil) != c.err || !slices.Equal(got, c.want) {
			t.Errorf("splitLine(%q) = %q, %v; want %q (error %t)", c.line, got, err, c.want, c.err)
		}
	}
}

func TestExpandNamesAndCompletion(t *testing.T) {
	a := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	root := a.rootCmd()
	for line, want := range map[string]string{
		"cl st":           "cluster status",
		"ra li --start a": "range list --start a",
		"r l":             "r l", // range or rebalance
		"g k":             "get k",
		"range sh a":      "range show a",
		"del k":           "delete k",
		"put k v":         "put k v",
		"ra s k":          "range s k", // show or split
	} {
		if got := strings.Join(expandNames(root, strings.Fields(line)), " "); got != want {
			t.Errorf("expandNames(%q) = %q, want %q", line, got, want)
		}
	}
	names := commandNames(root)
	for line, want := range map[string][]string{
		"cl":         {"cluster "},
		"range s":    {"range show ", "range snapshot ", "range split "},
		"range ":     {"range list ", "range move ", "range show ", "range snapshot ", "range split ", "range transfer-leader "},
		"store l":    {"store list "},
		"get k":      nil,
		"range -o j": nil,
		"h":          {"health ", "help ", "history "},
	} {
		if got := completeLine(names, line); !slices.Equal(got, want) {
			t.Errorf("completeLine(%q) = %q, want %q", line, got, want)
		}
	}
	if p := commonPrefix([]string{"range show ", "range split "}); p != "range s" {
		t.Errorf("commonPrefix = %q", p)
	}
}

// TestShellScript pipes lines into the shell: commands run with the
// shell's global flags, history works, the exit code is the last failure's.
func TestShellScript(t *testing.T) {
	fake := newFake()
	adm := newFakeAdmin()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb)
	a.stdin = strings.NewReader(strings.Join([]string{
		"put a 1",
		"# a comment",
		"g a",
		"!!",
		"-o json get a",
		"get nope",
		"st l",
		"history",
		"!9",
		"shell",
		"put 'unterminated",
		"exit",
		"put never run",
	}, "\n"))
	var clusters []clusterAddrs
	a.newClient = func(c clusterAddrs, _ router.Options) (kvClient, error) {
		clusters = append(clusters, c)
		return fake, nil
	}
	a.newAdmin = func([]string, router.Options) (adminClient, error) { return adm, nil }
	a.now = func() time.Time { return fakeNow }
	code := a.execute(context.Background(), []string{"--placement", "127.0.0.1:7401", "--timeout", "3s", "shell"})
	got := fmt.Sprintf("-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", out.String(), errb.String(), code)
	checkGolden(t, "shell_script", got)
	for _, c := range clusters {
		if !slices.Equal(c.placement, []string{"127.0.0.1:7401"}) {
			t.Errorf("a line ran against %+v, want the shell's --placement", c)
		}
	}
	if _, ok := fake.data["never"]; ok {
		t.Error("a line after exit ran")
	}
}
