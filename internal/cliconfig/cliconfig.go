package cliconfig

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Kind is a key's type.
type Kind int

// Kinds of configuration values.
const (
	String Kind = iota
	Int
	Uint
	Bool
	Duration
	Size // bytes, with optional unit: 512, 64KiB, 128MiB, 1GiB, 1GB
)

// Key is one configuration key. Name is dotted by section
// ("raft.election-timeout"); the flag is --Name (or --Flag when set) and
// the environment variable RANGEKV_NAME with dots and dashes as
// underscores.
type Key struct {
	Name    string
	Kind    Kind
	Default string
	Usage   string
	// Flag overrides the flag name (tls.cert is --tls-cert).
	Flag string
}

// FlagName is the key's flag name.
func (k Key) FlagName() string {
	if k.Flag != "" {
		return k.Flag
	}
	return k.Name
}

// EnvName is the environment variable of a key.
func EnvName(key string) string {
	return "RANGEKV_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// Register adds a flag per key (and --config) to fs.
func Register(fs *pflag.FlagSet, keys []Key) {
	fs.String("config", "", "YAML configuration file (keys nested by section, as the flag names)")
	for _, k := range keys {
		usage := fmt.Sprintf("%s (env %s)", k.Usage, EnvName(k.Name))
		if k.Kind == Bool {
			b, _ := strconv.ParseBool(k.Default)
			fs.Bool(k.FlagName(), b, usage)
			continue
		}
		fs.String(k.FlagName(), k.Default, usage)
	}
}

// Values is a loaded configuration.
type Values struct {
	v    *viper.Viper
	keys map[string]Key
	// Sources says, per key, where its value came from.
	Sources map[string]string
}

// Load resolves every key. It fails on an unreadable or unknown-key file
// and on values that do not parse, naming the key.
func Load(fs *pflag.FlagSet, keys []Key) (*Values, error) {
	v := viper.New()
	v.SetEnvPrefix("RANGEKV")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	known := map[string]Key{}
	for _, k := range keys {
		known[k.Name] = k
		v.SetDefault(k.Name, k.Default)
		if err := v.BindEnv(k.Name); err != nil {
			return nil, err
		}
		if err := v.BindPFlag(k.Name, fs.Lookup(k.FlagName())); err != nil {
			return nil, err
		}
	}
	vals := &Values{v: v, keys: known, Sources: map[string]string{}}
	cfgFile, _ := fs.GetString("config")
	if cfgFile == "" {
		cfgFile = os.Getenv("RANGEKV_CONFIG")
	}
	fileKeys := map[string]bool{}
	if cfgFile != "" {
		fv := viper.New()
		fv.SetConfigFile(cfgFile)
		fv.SetConfigType("yaml")
		if err := fv.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: cannot read %s: %w", cfgFile, err)
		}
		var unknown []string
		for _, k := range fv.AllKeys() {
			if _, ok := known[k]; !ok {
				unknown = append(unknown, k)
			}
			fileKeys[k] = true
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return nil, fmt.Errorf("config: unknown key %q in %s", unknown[0], cfgFile)
		}
		if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
			return nil, fmt.Errorf("config: %s: %w", cfgFile, err)
		}
	}
	for _, k := range keys {
		switch {
		case fs.Changed(k.FlagName()):
			vals.Sources[k.Name] = "flag"
		case os.Getenv(EnvName(k.Name)) != "":
			vals.Sources[k.Name] = "env"
		case fileKeys[k.Name]:
			vals.Sources[k.Name] = "file"
		default:
			vals.Sources[k.Name] = "default"
		}
		if _, err := vals.parse(k); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

func (vs *Values) raw(name string) string {
	return strings.TrimSpace(fmt.Sprint(vs.v.Get(name)))
}

func (vs *Values) parse(k Key) (any, error) {
	s := vs.raw(k.Name)
	if s == "" && k.Default == "" && k.Kind != String {
		// Unset with no default: the caller derives the value (e.g. from
		// a profile); report the zero value.
		switch k.Kind {
		case Int, Size:
			return int64(0), nil
		case Uint:
			return uint64(0), nil
		case Bool:
			return false, nil
		case Duration:
			return time.Duration(0), nil
		}
	}
	bad := func(what, example string) error {
		return fmt.Errorf("%s: invalid %s %q (from %s; e.g. %s)", k.Name, what, s, vs.Sources[k.Name], example)
	}
	switch k.Kind {
	case String:
		return s, nil
	case Int:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, bad("integer", "42")
		}
		return n, nil
	case Uint:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, bad("non-negative integer", "42")
		}
		return n, nil
	case Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, bad("boolean", "true or false")
		}
		return b, nil
	case Duration:
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, bad("duration", "1s, 250ms")
		}
		return d, nil
	case Size:
		n, err := ParseSize(s)
		if err != nil {
			return nil, bad("size", "4096, 64KiB, 128MiB")
		}
		return n, nil
	}
	return nil, fmt.Errorf("%s: unknown kind", k.Name)
}

func (vs *Values) must(name string) any {
	v, err := vs.parse(vs.keys[name])
	if err != nil {
		panic(err) // Load already validated every key
	}
	return v
}

// String returns a string key.
func (vs *Values) String(name string) string { return vs.must(name).(string) }

// Int returns an integer key.
func (vs *Values) Int(name string) int64 { return vs.must(name).(int64) }

// Uint returns a non-negative integer key.
func (vs *Values) Uint(name string) uint64 { return vs.must(name).(uint64) }

// Bool returns a boolean key.
func (vs *Values) Bool(name string) bool { return vs.must(name).(bool) }

// Duration returns a duration key.
func (vs *Values) Duration(name string) time.Duration { return vs.must(name).(time.Duration) }

// Size returns a size key in bytes.
func (vs *Values) Size(name string) int64 { return vs.must(name).(int64) }

// Source says where a key's value came from: flag, env, file or default.
func (vs *Values) Source(name string) string { return vs.Sources[name] }

// Dump renders the effective configuration as YAML-like lines, sorted,
// with each value's source.
func (vs *Values) Dump() string {
	names := make([]string, 0, len(vs.keys))
	for n := range vs.keys {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s: %q  # %s\n", n, vs.raw(n), vs.Sources[n])
	}
	return b.String()
}

// ParseSize parses a byte size: a plain number, or one with a unit
// (B, KB, MB, GB = powers of 1000; KiB, MiB, GiB = powers of 1024).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size")
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size too large")
	}
	return n * mult, nil
}
