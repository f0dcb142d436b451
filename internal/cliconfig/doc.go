// Package cliconfig loads a server's configuration with the precedence
// flags > RANGEKV_* environment > YAML file (--config) > defaults, from a
// schema of typed keys. Unknown keys in the file and values of the wrong
// type stop the process with a message naming the key. Only cmd/ uses it.
package cliconfig
