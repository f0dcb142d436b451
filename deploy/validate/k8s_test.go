package validate

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests is every Kubernetes object under deploy/k8s, strictly decoded.
type manifests struct {
	services     map[string]*corev1.Service
	statefulSets map[string]*appsv1.StatefulSet
	pdbs         map[string]*policyv1.PodDisruptionBudget
}

// decodeManifests decodes each YAML document of the files into its typed
// object; an unknown field, kind or a duplicate name is an error.
func decodeManifests(files ...string) (*manifests, error) {
	m := &manifests{services: map[string]*corev1.Service{}, statefulSets: map[string]*appsv1.StatefulSet{}, pdbs: map[string]*policyv1.PodDisruptionBudget{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s document %d", filepath.Base(f), i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			var obj interface{ GetName() string }
			gvk := tm.APIVersion + "/" + tm.Kind
			switch gvk {
			case "v1/Service":
				obj = &corev1.Service{}
			case "apps/v1/StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "policy/v1/PodDisruptionBudget":
				obj = &policyv1.PodDisruptionBudget{}
			default:
				return nil, fmt.Errorf("%s: unexpected kind %q", where, gvk)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				return nil, fmt.Errorf("%s (%s): %w", where, gvk, err)
			}
			name := obj.GetName()
			if name == "" {
				return nil, fmt.Errorf("%s: %s without metadata.name", where, gvk)
			}
			dup := false
			switch o := obj.(type) {
			case *corev1.Service:
				_, dup = m.services[name]
				m.services[name] = o
			case *appsv1.StatefulSet:
				_, dup = m.statefulSets[name]
				m.statefulSets[name] = o
			case *policyv1.PodDisruptionBudget:
				_, dup = m.pdbs[name]
				m.pdbs[name] = o
			}
			if dup {
				return nil, fmt.Errorf("%s: %s %q defined twice", where, gvk, name)
			}
		}
	}
	return m, nil
}

func stripComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func k8sFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(deployPath(t, "k8s/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s (%v)", err)
	}
	return files
}

func TestKubernetesManifests(t *testing.T) {
	m, err := decodeManifests(k8sFiles(t)...)
	if err != nil {
		t.Fatal(err)
	}
	pd, st := m.statefulSets["rangekv-placement"], m.statefulSets["rangekv-store"]
	if pd == nil || st == nil {
		t.Fatalf("want StatefulSets rangekv-placement and rangekv-store, have %v", keysOf(m.statefulSets))
	}
	bins := map[string]string{"rangekv-placement": "rangekv-placement", "rangekv-store": "rangekv-store"}
	settings := map[string]map[string]string{}
	for name, ss := range m.statefulSets {
		where := "StatefulSet " + name
		pod := ss.Spec.Template
		podLabels := labels.Set(pod.Labels)
		sel, err := metav1.LabelSelectorAsSelector(ss.Spec.Selector)
		if err != nil || !sel.Matches(podLabels) {
			t.Errorf("%s: selector %v does not match its pod labels %v (%v)", where, ss.Spec.Selector, pod.Labels, err)
		}
		if ss.Spec.Replicas == nil || *ss.Spec.Replicas < 3 {
			t.Errorf("%s: replicas %v, want >= 3", where, ss.Spec.Replicas)
		}

		// Stable network IDs: a headless Service named by serviceName
		// that selects these pods and publishes them before they are ready.
		svc := m.services[ss.Spec.ServiceName]
		switch {
		case svc == nil:
			t.Errorf("%s: serviceName %q has no Service", where, ss.Spec.ServiceName)
		case svc.Spec.ClusterIP != corev1.ClusterIPNone:
			t.Errorf("%s: Service %s has clusterIP %q, want None (headless)", where, svc.Name, svc.Spec.ClusterIP)
		case !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0:
			t.Errorf("%s: Service %s selector %v does not select its pods %v", where, svc.Name, svc.Spec.Selector, pod.Labels)
		case !svc.Spec.PublishNotReadyAddresses:
			t.Errorf("%s: Service %s must publish not-ready addresses (peers find each other before they are ready)", where, svc.Name)
		}

		// A PodDisruptionBudget covers the pods and allows one down.
		covered := 0
		for _, pdb := range m.pdbs {
			s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil {
				t.Errorf("PDB %s: %v", pdb.Name, err)
				continue
			}
			if s.Matches(podLabels) {
				covered++
				if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
					t.Errorf("%s: PDB %s maxUnavailable %v, want 1", where, pdb.Name, pdb.Spec.MaxUnavailable)
				}
			}
		}
		if covered != 1 {
			t.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", where, covered)
		}

		if len(pod.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", where, len(pod.Spec.Containers))
		}
		c := pod.Spec.Containers[0]
		if len(c.Command) != 1 || filepath.Base(c.Command[0]) != bins[name] {
			t.Fatalf("%s: command %v, want %s", where, c.Command, bins[name])
		}
		bin := bins[name]
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		checkEnv(t, where, bin, env)
		args := checkArgs(t, where, bin, c.Args)
		for _, a := range c.Args {
			for _, ref := range regexp.MustCompile(`\$\(([A-Z_][A-Z0-9_]*)\)`).FindAllStringSubmatch(a, -1) {
				if _, ok := env[ref[1]]; !ok {
					t.Errorf("%s: argument %q refers to $(%s), which env does not define", where, a, ref[1])
				}
			}
		}
		settings[name] = args

		// Probes on the named http port, which is --http-addr's port.
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if args["http-addr"] == "" || strconv.Itoa(int(ports["http"])) != port(t, where, args["http-addr"]) {
			t.Errorf("%s: container port http %d is not --http-addr %q", where, ports["http"], args["http-addr"])
		}
		if args["addr"] == "" || strconv.Itoa(int(ports["grpc"])) != port(t, where, args["addr"]) {
			t.Errorf("%s: container port grpc %d is not --addr %q", where, ports["grpc"], args["addr"])
		}
		checkProbe(t, where+" readinessProbe", c.ReadinessProbe, "/readyz")
		checkProbe(t, where+" livenessProbe", c.LivenessProbe, "/healthz")
		if c.StartupProbe != nil {
			checkProbe(t, where+" startupProbe", c.StartupProbe, "/healthz")
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
				t.Errorf("%s: no %s request", where, r)
			}
		}

		// The data directory is a volumeClaimTemplate.
		var mount *corev1.VolumeMount
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].MountPath == args["data-dir"] {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Errorf("%s: nothing mounted at --data-dir %q", where, args["data-dir"])
		} else {
			found := false
			for _, vct := range ss.Spec.VolumeClaimTemplates {
				if vct.Name == mount.Name {
					found = true
					if q := vct.Spec.Resources.Requests[corev1.ResourceStorage]; q.IsZero() {
						t.Errorf("%s: volumeClaimTemplate %s requests no storage", where, vct.Name)
					}
				}
			}
			if !found {
				t.Errorf("%s: data mount %q is not a volumeClaimTemplate", where, mount.Name)
			}
		}
		if pod.Spec.TerminationGracePeriodSeconds == nil {
			t.Errorf("%s: no terminationGracePeriodSeconds", where)
		}
	}

	// Placement: member N is pod rangekv-placement-N, whose ID comes from
	// its pod index; --initial-cluster names each by its stable DNS name.
	if pd.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("placement: podManagementPolicy %q; OrderedReady would wait forever for member 1 to be ready without a quorum", pd.Spec.PodManagementPolicy)
	}
	start := int32(0)
	if pd.Spec.Ordinals != nil {
		start = pd.Spec.Ordinals.Start
	}
	var idFromIndex bool
	for _, e := range pd.Spec.Template.Spec.Containers[0].Env {
		if e.Name == envName("id") && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.labels['apps.kubernetes.io/pod-index']" {
			idFromIndex = true
		}
	}
	if !idFromIndex || start < 1 {
		t.Errorf("placement: the member ID must be the pod index (RANGEKV_ID from the pod-index label) and ordinals must start at 1 (IDs are positive); start=%d", start)
	}
	members := parseMembers(t, "placement --initial-cluster", settings["rangekv-placement"]["initial-cluster"])
	grpc := port(t, "placement --addr", settings["rangekv-placement"]["addr"])
	var pdAddrs []string
	for i := int32(0); i < *pd.Spec.Replicas; i++ {
		ord := start + i
		want := fmt.Sprintf("%s-%d.%s:%s", pd.Name, ord, pd.Spec.ServiceName, grpc)
		if got := members[strconv.Itoa(int(ord))]; got != want {
			t.Errorf("placement --initial-cluster: member %d is %q, want %q", ord, got, want)
		}
		pdAddrs = append(pdAddrs, want)
	}
	if len(members) != int(*pd.Spec.Replicas) {
		t.Errorf("placement --initial-cluster has %d members, the StatefulSet %d", len(members), *pd.Spec.Replicas)
	}

	// Stores: every placement member, and a stable advertised name.
	if got := strings.Split(settings["rangekv-store"]["placement"], ","); strings.Join(sortedCopy(got), ",") != strings.Join(sortedCopy(pdAddrs), ",") {
		t.Errorf("store --placement %v, want %v", got, pdAddrs)
	}
	wantAdv := fmt.Sprintf("$(POD_NAME).%s:%s", st.Spec.ServiceName, port(t, "store --addr", settings["rangekv-store"]["addr"]))
	if got := settings["rangekv-store"]["advertise-addr"]; got != wantAdv {
		t.Errorf("store --advertise-addr %q, want %q", got, wantAdv)
	}
	var podName bool
	for _, e := range st.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			podName = true
		}
	}
	if !podName {
		t.Error("store: POD_NAME must come from metadata.name")
	}
}

func checkProbe(t *testing.T, where string, p *corev1.Probe, path string) {
	t.Helper()
	switch {
	case p == nil:
		t.Errorf("%s: missing", where)
	case p.HTTPGet == nil:
		t.Errorf("%s: want an httpGet probe", where)
	case p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http":
		t.Errorf("%s: GET %s on port %s, want %s on port http", where, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
	}
}

// The strict decoder refuses a misspelt field.
func TestKubernetesDecodeIsStrict(t *testing.T) {
	src := string(readFile(t, deployPath(t, "k8s/store.yaml")))
	bad := strings.Replace(src, "      terminationGracePeriodSeconds:", "      terminationGracePeriodSecond:", 1)
	if bad == src {
		t.Fatal("could not plant the bad field")
	}
	path := filepath.Join(t.TempDir(), "store.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeManifests(path); err == nil || !strings.Contains(err.Error(), "terminationGracePeriodSecond") {
		t.Fatalf("a misspelt field decoded (err %v)", err)
	}
}

// kubectl's own client-side dry run. kubectl maps kinds to resources
// through the API server's discovery, so it runs against a stub server on
// 127.0.0.1 that serves discovery for the kinds deploy/k8s uses and
// answers 404 to every object (so each apply is a create). This checks what
// kubectl parses (YAML, apiVersion/kind, names); --validate=false because
// the stub has no OpenAPI schema (the strict typed decode above checks
// fields). Never a real cluster: KUBECONFIG is /dev/null.
func TestKubectlDryRun(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("NOT RUN: kubectl is not installed")
	}
	srv := httptest.NewServer(http.HandlerFunc(stubDiscovery))
	defer srv.Close()
	for _, f := range k8sFiles(t) {
		cmd := exec.Command(kubectl, "--server="+srv.URL, "--request-timeout=10s", "apply", "--dry-run=client", "--validate=false", "-f", f)
		cmd.Env = append(os.Environ(), "KUBECONFIG=/dev/null")
		b, err := runCmd(cmd, time.Minute)
		if err != nil {
			t.Errorf("kubectl apply --dry-run=client %s: %v\n%s", f, err, b)
			continue
		}
		m, err := decodeManifests(f)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(m.services) + len(m.statefulSets) + len(m.pdbs); strings.Count(b, "created (dry run)") != want {
			t.Errorf("kubectl apply --dry-run=client %s: want %d objects created (dry run), got:\n%s", f, want, b)
		}
		t.Logf("%s", strings.TrimSpace(b))
	}
}

// stubDiscovery is the discovery of an API server that knows Service,
// StatefulSet and PodDisruptionBudget, and no object.
func stubDiscovery(w http.ResponseWriter, r *http.Request) {
	verbs := `"verbs":["create","delete","get","list","patch","update","watch"]`
	docs := map[string]string{
		"/api":            `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`,
		"/apis":           `{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"apps","versions":[{"groupVersion":"apps/v1","version":"v1"}],"preferredVersion":{"groupVersion":"apps/v1","version":"v1"}},{"name":"policy","versions":[{"groupVersion":"policy/v1","version":"v1"}],"preferredVersion":{"groupVersion":"policy/v1","version":"v1"}}]}`,
		"/api/v1":         `{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"services","singularName":"service","namespaced":true,"kind":"Service",` + verbs + `}]}`,
		"/apis/apps/v1":   `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":[{"name":"statefulsets","singularName":"statefulset","namespaced":true,"kind":"StatefulSet",` + verbs + `}]}`,
		"/apis/policy/v1": `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"policy/v1","resources":[{"name":"poddisruptionbudgets","singularName":"poddisruptionbudget","namespaced":true,"kind":"PodDisruptionBudget",` + verbs + `}]}`,
		"/version":        `{"major":"1","minor":"32","gitVersion":"v1.32.0-stub"}`,
	}
	w.Header().Set("Content-Type", "application/json")
	if b, ok := docs[r.URL.Path]; ok && r.Method == http.MethodGet {
		w.Write([]byte(b))
		return
	}
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}`))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
