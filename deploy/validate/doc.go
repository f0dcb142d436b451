// Package validate checks the deployment files under deploy/ without a
// Docker engine, a Kubernetes cluster or the network: the compose file
// through compose-go's loader (with the compose JSON schema), every
// Kubernetes manifest strictly decoded into k8s.io/api types, the systemd
// units and their environment files, the Dockerfile, and the Grafana
// dashboard's metric names. Flags are checked against the real binaries'
// --help (RANGEKV_BIN, set by `make deploy-check`).
//
// It is its own Go module so that the main module does not depend on
// compose-go and k8s.io/api.
package validate
