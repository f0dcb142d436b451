// rangekv certs: a development CA and certificates for a TLS cluster.

package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/internal/tlsconfig"
)

func (a *app) certsCmd() *cobra.Command {
	var dir, hosts, names string
	var force bool
	cmd := &cobra.Command{
		Use:   "certs --dir DIR [--hosts H,H,...] [--names N,N,...] [--force]",
		Short: "Write a development CA and TLS certificates (ECDSA P-256)",
		Long: `certs writes, into --dir, what a mutual-TLS cluster needs for development
and tests:

  ca.crt, ca.key          a new certificate authority (keep ca.key private)
  node.crt, node.key      for every store and placement member (server and
                          client use), valid for the --hosts and --names
  client.crt, client.key  for the CLI and applications (client use only)

Every address a store or placement member is dialled at must be one of
--hosts (IP addresses or DNS names) or --names (more DNS names, e.g. the host
names of a compose file). Keys are written mode 0600. Existing files are
not overwritten unless --force is given. Production clusters should use
their own CA and one certificate per host; these files are for development.

Start the servers with --tls-cert node.crt --tls-key node.key --tls-ca
ca.crt, and the CLI with --tls-cert client.crt --tls-key client.key
--tls-ca ca.crt (or RANGEKV_TLS_CERT, RANGEKV_TLS_KEY, RANGEKV_TLS_CA).
The servers re-read the files when they change: to rotate, replace them
in place.`,
		Example: `  rangekv certs --dir ./certs
  rangekv certs --dir ./certs --hosts 127.0.0.1,localhost,10.0.0.5 --names store1,store2,store3,pd1 --force

  rangekv-placement --id 1 --initial-cluster 1=127.0.0.1:7401 --data-dir pd1 \
    --tls-cert certs/node.crt --tls-key certs/node.key --tls-ca certs/ca.crt
  rangekv --placement 127.0.0.1:7401 \
    --tls-cert certs/client.crt --tls-key certs/client.key --tls-ca certs/ca.crt get greeting`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(dir) == "" {
				return usageErrorf("dir: required (--dir DIR, where the certificates are written)")
			}
			paths, err := tlsconfig.GenerateDev(dir, tlsconfig.DevOptions{
				Hosts: splitAddrs(hosts), Names: splitAddrs(names), Force: force, Now: a.now(),
			})
			if err != nil {
				return usageErrorf("certs: %v", err)
			}
			for _, p := range paths {
				fmt.Fprintln(a.stdout, "wrote", p)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the files into (created if missing)")
	cmd.Flags().StringVar(&hosts, "hosts", "127.0.0.1,localhost", "comma-separated IP addresses and DNS names of the node certificate")
	cmd.Flags().StringVar(&names, "names", "", "comma-separated extra DNS names of the node certificate (e.g. store1,store2,pd1)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}
