package integration

// Deployment checks that need neither a Docker engine nor a Kubernetes cluster: the
// compose file, the Dockerfiles, the Prometheus and Grafana provisioning and the
// Kubernetes manifests are parsed and their wiring is checked (the socket path, the
// shared volume, the uid/gid, the token, the ports, the probes, the selectors, the
// metric names of the dashboard). TestDeployChecksCatchBreakage breaks each piece in
// a copy of the files and requires the checks to notice, so none of them can pass
// vacuously.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// covetMetrics is the metric contract between the gateway's admin listener and the
// dashboard: name -> labels, and whether it is a histogram (queried as _bucket, _sum,
// _count).
var covetMetrics = map[string]struct {
	labels    []string
	histogram bool
}{
	"covet_requests_total":             {labels: []string{"app", "route", "method", "status", "protocol"}},
	"covet_request_duration_seconds":   {labels: []string{"app", "route", "method"}, histogram: true},
	"covet_requests_in_flight":         {labels: []string{"app"}},
	"covet_queue_depth":                {labels: []string{"app"}},
	"covet_queue_wait_seconds":         {labels: []string{"app"}, histogram: true},
	"covet_ring_bytes_used":            {labels: []string{"worker", "ring"}},
	"covet_workers":                    {labels: []string{"app", "state"}},
	"covet_worker_restarts_total":      {labels: []string{"app", "reason"}},
	"covet_connections_open":           {labels: []string{"protocol"}},
	"covet_connections_accepted_total": {},
	"covet_bytes_received_total":       {},
	"covet_bytes_sent_total":           {},
}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = []string{"instance", "job"}

// The files the checks read, relative to the repository root.
const (
	composeFile       = "docker-compose.yml"
	gatewayDocker     = "deploy/gateway.Dockerfile"
	workerDocker      = "deploy/worker.Dockerfile"
	dashboardFile     = "deploy/grafana/dashboards/covetpy.json"
	k8sDir            = "deploy/k8s"
	workerEntrypoint  = "deploy/worker-entrypoint.sh"
	composeTestScript = "deploy/compose-test.sh"
)

// TestDeployFiles runs every check on the repository's own deployment files.
func TestDeployFiles(t *testing.T) {
	for _, p := range deployProblems(repoRoot(t)) {
		t.Error(p)
	}
}

// TestDeployChecksCatchBreakage copies the deployment files, breaks one thing at a
// time and requires a problem that mentions it.
func TestDeployChecksCatchBreakage(t *testing.T) {
	root := repoRoot(t)
	cases := []struct {
		name, file, old, new, want string
	}{
		{"gateway spawns workers", composeFile, "      - --workers\n      - \"0\"", "      - --workers\n      - \"2\"", "--workers"},
		{"socket path differs", composeFile, "COVET_CONTROL_SOCKET: /run/covet/control.sock", "COVET_CONTROL_SOCKET: /run/covet/other.sock", "COVET_CONTROL_SOCKET"},
		{"worker volume elsewhere", composeFile, "    volumes:\n      - covet-run:/run/covet\n    depends_on", "    volumes:\n      - covet-run:/run/other\n    depends_on", "/run/covet"},
		{"worker other volume", composeFile, "    volumes:\n      - covet-run:/run/covet\n    depends_on", "    volumes:\n      - other-run:/run/covet\n    depends_on", "volume"},
		{"token from other variable", composeFile, "      COVET_CONTROL_SOCKET: /run/covet/control.sock\n      COVET_CONTROL_TOKEN: ${COVET_CONTROL_TOKEN", "      COVET_CONTROL_SOCKET: /run/covet/control.sock\n      COVET_CONTROL_TOKEN: ${WORKER_TOKEN", "token"},
		{"token hard-coded", composeFile, "    environment:\n      COVET_CONTROL_TOKEN: ${COVET_CONTROL_TOKEN:?set COVET_CONTROL_TOKEN (for example in .env) to a random secret}\n    ports", "    environment:\n      COVET_CONTROL_TOKEN: hunter2\n    ports", "token"},
		{"token missing on worker", composeFile, "      COVET_CONTROL_SOCKET: /run/covet/control.sock\n      COVET_CONTROL_TOKEN: ${COVET_CONTROL_TOKEN:?set COVET_CONTROL_TOKEN (for example in .env) to a random secret}\n", "      COVET_CONTROL_SOCKET: /run/covet/control.sock\n", "COVET_CONTROL_TOKEN"},
		{"one worker", composeFile, "replicas: 2", "replicas: 1", "replicas"},
		{"admin on loopback", composeFile, "      - 0.0.0.0:9090\n", "      - 127.0.0.1:9090\n", "--admin-listen"},
		{"no healthcheck", composeFile, "test: [\"CMD-SHELL\", \"test -S /run/covet/control.sock\"]", "test: [\"NONE\"]", "healthcheck"},
		{"compose service missing", composeFile, "  grafana:\n", "  grafana-x:\n", "grafana"},
		{"compose invalid yaml", composeFile, "services:\n", "services:\n  - :\n", "yaml"},
		{"prometheus wrong port", "deploy/prometheus/prometheus.yml", "gateway:9090", "gateway:8000", "gateway:9090"},
		{"prometheus wrong path", "deploy/prometheus/prometheus.yml", "metrics_path: /metrics", "metrics_path: /stats", "/metrics"},
		{"prometheus config not mounted", composeFile, "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro", "./deploy/prometheus/prometheus.yml:/etc/prometheus/other.yml:ro", "prometheus"},
		{"grafana datasource url", "deploy/grafana/provisioning/datasources/prometheus.yml", "url: http://prometheus:9090", "url: http://localhost:9090", "datasource"},
		{"grafana dashboards path", "deploy/grafana/provisioning/dashboards/covetpy.yml", "path: /var/lib/grafana/dashboards/covetpy", "path: /var/lib/grafana/dashboards/other", "dashboard"},
		{"dashboard unknown metric", dashboardFile, "covet_queue_depth{", "covet_queue_length{", "covet_queue_length"},
		{"dashboard unknown label", dashboardFile, "sum by (route, status) (rate(covet_requests_total", "sum by (path, status) (rate(covet_requests_total", "\"path\""},
		{"dashboard unknown matcher label", dashboardFile, "covet_workers{app=~", "covet_workers{application=~", "application"},
		{"dashboard bare histogram", dashboardFile, "covet_request_duration_seconds_bucket{app=~\\\"$app\\\"}[$__rate_interval])))\",\n          \"legendFormat\": \"p50\"", "covet_request_duration_seconds{app=~\\\"$app\\\"}[$__rate_interval])))\",\n          \"legendFormat\": \"p50\"", "covet_request_duration_seconds"},
		{"dashboard quantile without le", dashboardFile, "sum by (le, route, method)", "sum by (route, method)", "aggregated by le"},
		{"dashboard foreign metric", dashboardFile, "sum(covet_connections_open)", "sum(up)", "metric up "},
		{"dashboard invalid json", dashboardFile, "\"panels\": [", "\"panels\": [,", "JSON"},
		{"dashboard datasource uid", dashboardFile, "\"uid\": \"covet-prometheus\"", "\"uid\": \"other\"", "datasource"},
		{"dashboard no p95", dashboardFile, "histogram_quantile(0.95,", "histogram_quantile(0.9,", "0.95"},
		{"worker uid differs", workerDocker, "ARG COVET_UID=10001", "ARG COVET_UID=10002", "uid"},
		{"gateway USER missing ARG", gatewayDocker, "FROM --platform=linux/amd64 ${DEBIAN_IMAGE}\nARG COVET_UID\n", "FROM --platform=linux/amd64 ${DEBIAN_IMAGE}\n", "USER"},
		{"gateway runs as root", gatewayDocker, "USER ${COVET_UID}:${COVET_GID}", "USER 0:0", "USER"},
		{"gateway GOFLAGS missing", gatewayDocker, "ENV GOFLAGS=-ldflags=-checklinkname=0 \\\n", "ENV GOFLAGS=-trimpath \\\n", "checklinkname"},
		{"gateway ldflags override", gatewayDocker, `-ldflags="-checklinkname=0 -X`, `-ldflags="-X`, "-ldflags"},
		{"gateway single stage", gatewayDocker, "FROM --platform=linux/amd64 ${DEBIAN_IMAGE}\n", "", "stage"},
		{"gateway EXPOSE", gatewayDocker, "EXPOSE 8000 9090", "EXPOSE 8000", "EXPOSE"},
		{"gateway entrypoint", gatewayDocker, "ENTRYPOINT [\"covet-gateway\"]", "ENTRYPOINT [\"/bin/sh\"]", "ENTRYPOINT"},
		{"worker base image", workerDocker, "ARG PYTHON_IMAGE=python:3.11-slim-bookworm", "ARG PYTHON_IMAGE=python:3.12-slim-bookworm", "python:3.11-slim"},
		{"worker syntax directive", workerDocker, "# CovetPy worker image", "# syntax=docker/dockerfile:1\n# CovetPy worker image", "syntax"},
		{"worker platform", workerDocker, "FROM --platform=linux/amd64 ${PYTHON_IMAGE}", "FROM ${PYTHON_IMAGE}", "linux/amd64"},
		{"gateway build stage platform", gatewayDocker, "FROM --platform=linux/amd64 ${GO_IMAGE} AS build", "FROM --platform=linux/arm64 ${GO_IMAGE} AS build", "linux/amd64"},
		{"compose worker platform", composeFile, "    image: covetpy/worker:dev\n    platform: linux/amd64\n", "    image: covetpy/worker:dev\n", "platform"},
		{"compose gateway no init", composeFile, "    # A small init as pid 1 forwards SIGTERM and reaps; stop is prompt.\n    init: true\n", "", "init"},
		{"grafana in the default profile", composeFile, "    profiles: [grafana]\n", "", "profiles"},
		{"prometheus behind a profile", composeFile, "    image: covetpy/prometheus:dev\n", "    image: covetpy/prometheus:dev\n    profiles: [metrics]\n", "profiles"},
		{"compose build arg default differs", composeFile, "GO_IMAGE: ${COVET_GO_IMAGE:-golang:1.26-bookworm}", "GO_IMAGE: ${COVET_GO_IMAGE:-golang:1.25-bookworm}", "GO_IMAGE"},
		{"compose build arg undeclared", composeFile, "PYTHON_IMAGE: ${COVET_PYTHON_IMAGE", "PY_IMAGE: ${COVET_PYTHON_IMAGE", "PY_IMAGE"},
		{"compose build arg literal", composeFile, "DEBIAN_IMAGE: ${COVET_DEBIAN_IMAGE:-debian:bookworm-slim}\n    image: covetpy/prometheus", "DEBIAN_IMAGE: debian:bookworm-slim\n    image: covetpy/prometheus", "DEBIAN_IMAGE"},
		{"http published on all interfaces", composeFile, "${COVET_HTTP_PUBLISH:-127.0.0.1:8000}:8000", "${COVET_HTTP_PUBLISH:-8000}:8000", "127.0.0.1"},
		{"prometheus published on all interfaces", composeFile, "${COVET_PROMETHEUS_PUBLISH:-127.0.0.1:9091}:9090", "9091:9090", "127.0.0.1"},
		{"prometheus from a registry", composeFile, "    build:\n      context: deploy/prometheus\n", "    build:\n      context: deploy/other\n", "deploy/prometheus"},
		{"prometheus package not installed", "deploy/prometheus/Dockerfile", "--no-install-recommends prometheus", "--no-install-recommends curl", "prometheus package"},
		{"no compose-test target", "Makefile", "\tdeploy/compose-test.sh\n", "\ttrue\n", "compose-test"},
		{"compose-test base Dockerfile missing", composeTestScript, "-f deploy/base/python.Dockerfile", "-f deploy/base/py.Dockerfile", "py.Dockerfile"},
		{"worker sdk wheel not built", workerDocker, "RUN pip wheel --no-deps -w /wheels /tmp/python-sdk", "RUN true", "pip installs the python-sdk"},
		{"worker app not copied", workerDocker, "COPY examples/hello/app.py /app/app.py", "COPY examples/hello/missing.py /app/app.py", "missing.py"},
		{"worker socket env", workerDocker, "ENV COVET_CONTROL_SOCKET=/run/covet/control.sock", "ENV COVET_CONTROL_SOCKET=/tmp/control.sock", "COVET_CONTROL_SOCKET"},
		{"dockerignore drops sdk", ".dockerignore", "*.test\n", "*.test\npython-sdk\n", "dockerignore"},
		{"dockerignore keeps venv", ".dockerignore", "\n.venv\n", "\n", ".venv"},
		{"dockerignore keeps the token file", ".dockerignore", "\n.env\n", "\n", ".env is not ignored"},
		{"k8s invalid yaml", "deploy/k8s/pdb.yaml", "spec:\n", "spec:\n  - :\n", "yaml"},
		{"k8s no HPA", "deploy/k8s/hpa.yaml", "kind: HorizontalPodAutoscaler", "kind: ConfigMap", "HorizontalPodAutoscaler"},
		{"k8s HPA target", "deploy/k8s/hpa.yaml", "    kind: Deployment\n    name: covetpy", "    kind: Deployment\n    name: covet", "scaleTargetRef"},
		{"k8s HPA no cpu", "deploy/k8s/hpa.yaml", "name: cpu", "name: memory", "cpu"},
		{"k8s readiness path", "deploy/k8s/deployment.yaml", "path: /readyz", "path: /ready", "/readyz"},
		{"k8s liveness port", "deploy/k8s/deployment.yaml", "path: /healthz\n              port: admin", "path: /healthz\n              port: 8080", "liveness"},
		{"k8s service targetPort", "deploy/k8s/service.yaml", "targetPort: http", "targetPort: web", "targetPort"},
		{"k8s service port", "deploy/k8s/service.yaml", "port: 80\n", "port: 8080\n", "port 80"},
		{"k8s selector", "deploy/k8s/service.yaml", "  selector:\n    app.kubernetes.io/name: covetpy\n    app.kubernetes.io/component: gateway\n  ports:\n    - name: http", "  selector:\n    app.kubernetes.io/name: covet\n    app.kubernetes.io/component: gateway\n  ports:\n    - name: http", "selector"},
		{"k8s deployment selector", "deploy/k8s/deployment.yaml", "  selector:\n    matchLabels:\n      app.kubernetes.io/name: covetpy", "  selector:\n    matchLabels:\n      app.kubernetes.io/name: covet", "selector"},
		{"k8s prometheus annotation", "deploy/k8s/service.yaml", "prometheus.io/port: \"9090\"", "prometheus.io/port: \"8000\"", "prometheus.io/port"},
		{"k8s worker mount", "deploy/k8s/deployment.yaml", "            - name: covet-run\n              mountPath: /run/covet\n            - name: tmp", "            - name: covet-run\n              mountPath: /var/run/covet\n            - name: tmp", "/run/covet"},
		{"k8s worker socket env", "deploy/k8s/deployment.yaml", "              value: /run/covet/control.sock", "              value: /run/covet/c.sock", "COVET_CONTROL_SOCKET"},
		{"k8s runAsUser", "deploy/k8s/deployment.yaml", "runAsUser: 10001", "runAsUser: 1000", "runAsUser"},
		{"k8s fsGroup", "deploy/k8s/deployment.yaml", "        fsGroup: 10001\n", "", "fsGroup"},
		{"k8s secret key", "deploy/k8s/secret.yaml", "  token: REPLACE", "  tok: REPLACE", "no Secret"},
		{"k8s no limits", "deploy/k8s/deployment.yaml", "            limits:\n              cpu: \"2\"\n              memory: 512Mi\n", "", "limits"},
		{"k8s gateway spawns", "deploy/k8s/deployment.yaml", "            - --workers\n            - \"0\"", "            - --workers\n            - \"1\"", "--workers"},
		{"k8s volume not emptyDir", "deploy/k8s/deployment.yaml", "        - name: covet-run\n          emptyDir:\n            sizeLimit: 1Mi", "        - name: covet-run\n          hostPath:\n            path: /run/covet", "emptyDir"},
		{"k8s no arch selector", "deploy/k8s/deployment.yaml", "        kubernetes.io/arch: amd64\n", "        kubernetes.io/os: linux\n", "kubernetes.io/arch"},
		{"kustomization misses file", "deploy/k8s/kustomization.yaml", "  - pdb.yaml\n", "", "pdb.yaml"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case %q", c.name)
		}
		seen[c.name] = true
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			dir := copyDeployFiles(t, root)
			p := filepath.Join(dir, c.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(c.old)) {
				t.Fatalf("%s does not contain %q: update this case", c.file, c.old)
			}
			if err := os.WriteFile(p, bytes.Replace(b, []byte(c.old), []byte(c.new), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			probs := deployProblems(dir)
			for _, pr := range probs {
				if strings.Contains(pr, c.want) {
					t.Logf("caught: %s", pr)
					return
				}
			}
			t.Errorf("breaking %s (%q -> %q) gave no problem mentioning %q; problems: %q", c.file, c.old, c.new, c.want, probs)
		})
	}
}

// TestDeployWorkerEntrypoint runs the worker image's entrypoint script with /bin/sh:
// it waits for the control socket, gives up after COVET_SOCKET_WAIT, and execs its
// arguments.
func TestDeployWorkerEntrypoint(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	script := filepath.Join(repoRoot(t), workerEntrypoint)
	dir, err := os.MkdirTemp("", "covet-ep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "control.sock")
	run := func(env ...string) (string, error) {
		cmd := exec.Command(sh, append([]string{script}, "echo", "started")...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "COVET_CONTROL_SOCKET=" + sock}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	start := time.Now()
	out, err := run("COVET_SOCKET_WAIT=1")
	if err == nil || !strings.Contains(out, "no control socket") {
		t.Errorf("no socket: err %v, output %q; want a failure naming the socket", err, out)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 10*time.Second {
		t.Errorf("no socket: gave up after %v, want about 1s", d)
	}
	if out, err := run("COVET_SOCKET_WAIT=soon"); err == nil || !strings.Contains(out, "COVET_SOCKET_WAIT") {
		t.Errorf("bad COVET_SOCKET_WAIT: err %v, output %q", err, out)
	}
	if out, err := run("COVET_CONTROL_FD=3"); err != nil || strings.TrimSpace(out) != "started" {
		t.Errorf("spawned worker: err %v, output %q; want it to run at once", err, out)
	}

	// The socket appears while the script waits.
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := run("COVET_SOCKET_WAIT=20")
		done <- result{out, err}
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("ran before the socket existed: %q %v", r.out, r.err)
	default:
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	select {
	case r := <-done:
		if r.err != nil || strings.TrimSpace(r.out) != "started" {
			t.Errorf("socket present: err %v, output %q; want %q", r.err, r.out, "started")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the entrypoint did not notice the socket")
	}
}

// TestDeployComposeTestScript checks that deploy/compose-test.sh (make compose-test,
// which needs a Docker engine and minutes, so it is not part of make test) parses.
func TestDeployComposeTestScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash:", err)
	}
	if out, err := exec.Command(bash, "-n", filepath.Join(repoRoot(t), composeTestScript)).CombinedOutput(); err != nil {
		t.Errorf("bash -n %s: %v\n%s", composeTestScript, err, out)
	}
}

// TestDeployComposeConfig asks docker-compose itself to validate the compose file,
// where it is installed (Debian's docker-compose package, or the docker compose
// plugin); the token variable is required. It reads no .env: the README's quick start
// leaves one holding the token beside the compose file, and compose would take the
// token from it (the copy checked here has one, to keep it so).
func TestDeployComposeConfig(t *testing.T) {
	var argv []string
	if p, err := exec.LookPath("docker-compose"); err == nil {
		argv = []string{p}
	} else if p, err := exec.LookPath("docker"); err == nil && exec.Command(p, "compose", "version").Run() == nil {
		argv = []string{p, "compose"}
	} else {
		t.Skip("neither docker-compose nor the docker compose plugin is installed (apt-get install docker-compose)")
	}
	dir := copyDeployFiles(t, repoRoot(t))
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("COVET_CONTROL_TOKEN=from-dot-env\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnvFile := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(noEnvFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command(argv[0], append(argv[1:], "--env-file", noEnvFile, "-f", composeFile, "config", "-q")...)
		cmd.Dir = dir
		var keep []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "COVET_CONTROL_TOKEN=") {
				keep = append(keep, kv)
			}
		}
		cmd.Env = append(keep, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("COVET_CONTROL_TOKEN=test-token"); err != nil {
		t.Errorf("%v config -q: %v\n%s", argv, err, out)
	}
	if out, err := run(); err == nil {
		t.Errorf("config passed without COVET_CONTROL_TOKEN; the token must be required\n%s", out)
	}
}

// ---------------------------------------------------------------------------
// The checks.

// deployProblems checks the deployment files under root and returns what is wrong,
// one sentence each; none means the wiring is consistent.
func deployProblems(root string) []string {
	c := &checker{root: root}
	c.allYAMLParses()
	gw := c.compose()
	c.dockerfiles(gw)
	c.dockerignore()
	c.k8s(gw)
	c.composeTest()
	return c.probs
}

type checker struct {
	root  string
	probs []string
	uid   string // from the gateway Dockerfile's USER
	gid   string
}

func (c *checker) addf(format string, args ...any) {
	c.probs = append(c.probs, fmt.Sprintf(format, args...))
}

// gatewayWiring is what the compose file's gateway command says; the other files must
// agree with it.
type gatewayWiring struct {
	socket     string // --control-socket
	listenPort string // port of --listen
	adminPort  string // port of --admin-listen
}

// allYAMLParses decodes docker-compose.yml and every YAML file under deploy/.
func (c *checker) allYAMLParses() {
	files := []string{composeFile}
	filepath.WalkDir(filepath.Join(c.root, "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			c.addf("walking deploy/: %v", err)
			return nil
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			rel, _ := filepath.Rel(c.root, p)
			files = append(files, rel)
		}
		return nil
	})
	if len(files) < 8 {
		c.addf("found only %d YAML files (%v); deploy/ is incomplete", len(files), files)
	}
	for _, f := range files {
		if _, err := c.yamlDocs(f); err != nil {
			c.addf("%v", err)
		}
	}
}

// yamlDocs decodes every document of a YAML file.
func (c *checker) yamlDocs(rel string) ([]map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(c.root, rel))
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: invalid yaml: %v", rel, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: invalid yaml: no document", rel)
	}
	return docs, nil
}

func (c *checker) yamlDoc(rel string) map[string]any {
	docs, err := c.yamlDocs(rel)
	if err != nil {
		return nil // reported by allYAMLParses
	}
	if len(docs) != 1 {
		c.addf("%s: %d YAML documents, want 1", rel, len(docs))
	}
	return docs[0]
}

// --- docker-compose.yml, Prometheus, Grafana

func (c *checker) compose() gatewayWiring {
	var gw gatewayWiring
	doc := c.yamlDoc(composeFile)
	if doc == nil {
		return gw
	}
	services := asMap(doc["services"])
	for _, name := range []string{"gateway", "worker", "prometheus", "grafana"} {
		if asMap(services[name]) == nil {
			c.addf("%s: service %q is missing", composeFile, name)
		}
	}
	gateway, worker := asMap(services["gateway"]), asMap(services["worker"])
	if gateway == nil || worker == nil {
		return gw
	}

	// Images built from the deploy/ Dockerfiles.
	for name, want := range map[string]string{"gateway": gatewayDocker, "worker": workerDocker} {
		build := asMap(asMap(services[name])["build"])
		if df := str(build["dockerfile"]); path.Clean(df) != want {
			c.addf("%s: service %s builds %q, want dockerfile %s", composeFile, name, df, want)
		}
		if ctx := str(build["context"]); path.Clean(ctx) != "." {
			c.addf("%s: service %s builds with context %q, want the repository root \".\"", composeFile, name, ctx)
		}
	}

	// The gateway's command.
	args := words(gateway["command"])
	if v, ok := flagValue(args, "workers"); !ok || v != "0" {
		c.addf("%s: the gateway command must have --workers 0 (workers are separate containers), has %q", composeFile, v)
	}
	gw.socket, _ = flagValue(args, "control-socket")
	if !path.IsAbs(gw.socket) {
		c.addf("%s: the gateway command needs --control-socket with an absolute path, has %q", composeFile, gw.socket)
	}
	gw.listenPort = c.wildcardPort(args, "listen", "HTTP clients")
	gw.adminPort = c.wildcardPort(args, "admin-listen", "Prometheus")
	if gw.listenPort != "" && gw.listenPort == gw.adminPort {
		c.addf("%s: --listen and --admin-listen use the same port %s", composeFile, gw.listenPort)
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "control-token") }) {
		c.addf("%s: the gateway command carries --control-token; pass the token as COVET_CONTROL_TOKEN in the environment instead", composeFile)
	}

	// The worker reaches that socket.
	wenv := envMap(worker["environment"])
	wsock, ok := wenv["COVET_CONTROL_SOCKET"]
	if !ok {
		wsock = c.dockerfile(workerDocker).finalEnv("COVET_CONTROL_SOCKET")
	}
	if wsock != gw.socket {
		c.addf("%s: worker COVET_CONTROL_SOCKET is %q, the gateway's --control-socket is %q", composeFile, wsock, gw.socket)
	}
	if wcmd := strings.Join(words(worker["command"]), " "); wcmd != "" && !strings.Contains(wcmd, "-m covet worker ") {
		c.addf("%s: the worker command %q does not run `python -m covet worker MODULE:ATTR`", composeFile, wcmd)
	}

	// Both mount one named volume at the socket's directory.
	sockDir := path.Dir(gw.socket)
	gvol := namedVolumeAt(gateway, sockDir)
	wvol := namedVolumeAt(worker, sockDir)
	switch {
	case gvol == "":
		c.addf("%s: the gateway mounts no named volume at %s (the control socket's directory)", composeFile, sockDir)
	case wvol == "":
		c.addf("%s: the worker mounts no named volume at %s (the control socket's directory)", composeFile, sockDir)
	case gvol != wvol:
		c.addf("%s: gateway and worker mount different volumes (%s, %s) at %s", composeFile, gvol, wvol, sockDir)
	default:
		if _, ok := asMap(doc["volumes"])[gvol]; !ok {
			c.addf("%s: volume %s is not declared under the top-level volumes", composeFile, gvol)
		}
	}

	// Both get the token from one required variable.
	gtok, gok := envMap(gateway["environment"])["COVET_CONTROL_TOKEN"]
	wtok, wok := wenv["COVET_CONTROL_TOKEN"]
	if !gok || !wok {
		c.addf("%s: COVET_CONTROL_TOKEN must be set on both gateway (%v) and worker (%v)", composeFile, gok, wok)
	} else {
		gvar, gerr := tokenVariable(gtok)
		wvar, werr := tokenVariable(wtok)
		switch {
		case gerr != nil:
			c.addf("%s: gateway token: %v", composeFile, gerr)
		case werr != nil:
			c.addf("%s: worker token: %v", composeFile, werr)
		case gvar != wvar:
			c.addf("%s: gateway token comes from $%s, worker token from $%s", composeFile, gvar, wvar)
		}
	}

	// Workers wait for the gateway's socket, and there is more than one.
	switch dep := worker["depends_on"].(type) {
	case map[string]any:
		g := asMap(dep["gateway"])
		if g == nil {
			c.addf("%s: worker does not depend on gateway", composeFile)
		} else if str(g["condition"]) == "service_healthy" && !hasHealthcheck(gateway) {
			c.addf("%s: worker waits for gateway to be healthy, but gateway has no healthcheck", composeFile)
		}
	case []any:
		if !slices.ContainsFunc(dep, func(v any) bool { return str(v) == "gateway" }) {
			c.addf("%s: worker does not depend on gateway", composeFile)
		}
	default:
		c.addf("%s: worker does not depend on gateway", composeFile)
	}
	if !hasHealthcheck(gateway) {
		c.addf("%s: gateway has no healthcheck", composeFile)
	}
	replicas := asInt(asMap(worker["deploy"])["replicas"])
	if s := asInt(worker["scale"]); s > replicas {
		replicas = s
	}
	if replicas < 2 {
		c.addf("%s: worker has %d replicas (deploy.replicas or scale), want at least 2", composeFile, replicas)
	}

	c.composeRuntime(services)
	c.prometheus(asMap(services["prometheus"]), gw)
	c.grafana(services, asMap(services["grafana"]))
	return gw
}

// composeRuntime checks what `make compose-test` relies on when it starts the file:
// gateway and worker pinned to linux/amd64, an init in every container (prompt stop),
// Grafana alone behind a profile (its image has no offline source), build arguments
// that the Dockerfiles declare with the same defaults, and published ports on
// 127.0.0.1 unless the user says otherwise.
func (c *checker) composeRuntime(services map[string]any) {
	for _, name := range []string{"gateway", "worker"} {
		if p := str(asMap(services[name])["platform"]); p != "linux/amd64" {
			c.addf("%s: service %s has platform %q, want linux/amd64 (the Python ring client needs x86-64's store order)", composeFile, name, p)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(services)) {
		svc := asMap(services[name])
		if svc["init"] != true {
			c.addf("%s: service %s lacks init: true", composeFile, name)
		}
		var profiles []string
		for _, p := range asList(svc["profiles"]) {
			profiles = append(profiles, str(p))
		}
		switch {
		case name == "grafana" && !slices.Equal(profiles, []string{"grafana"}):
			c.addf("%s: grafana has profiles %v, want [grafana] (make compose-test starts the default profile, and Grafana's image has no offline source)", composeFile, profiles)
		case name != "grafana" && len(profiles) > 0:
			c.addf("%s: service %s has profiles %v; only grafana may be left out of the default profile", composeFile, name, profiles)
		}

		// Build arguments: declared by the Dockerfile, the same default in both places.
		build := asMap(svc["build"])
		if build != nil {
			df := str(build["dockerfile"])
			if df == "" {
				df = "Dockerfile"
			}
			rel := path.Join(str(build["context"]), df)
			d := c.dockerfile(rel)
			for arg, v := range envMap(build["args"]) {
				def, ok := d.global[arg]
				if !ok {
					c.addf("%s: service %s passes build arg %s, which %s does not declare before its first FROM", composeFile, name, arg, rel)
					continue
				}
				m := interpolation.FindStringSubmatch(v)
				if m == nil || m[2] != ":-" || m[3] != def {
					c.addf("%s: service %s build arg %s is %q, want ${VARIABLE:-%s} (the default in %s)", composeFile, name, arg, v, def, rel)
				}
			}
		}

		// Published ports: on 127.0.0.1 by default.
		for _, p := range asList(svc["ports"]) {
			spec := str(p)
			if m := publishDefault.FindStringSubmatch(spec); m != nil {
				spec = m[1] + m[2]
			}
			if !strings.HasPrefix(spec, "127.0.0.1:") {
				c.addf("%s: service %s publishes %q, which does not default to 127.0.0.1", composeFile, name, str(p))
			}
		}
	}
}

var syntaxDirective = regexp.MustCompile(`(?mi)^#\s*syntax\s*=`)

// publishDefault matches a port mapping whose host part is "${VAR:-DEFAULT}"; group 1
// is the default, group 2 what follows the closing brace.
var publishDefault = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}(.*)$`)

// wildcardPort returns the port of an address flag, which must listen on all
// interfaces so that other containers (or the host's port mapping) reach it.
func (c *checker) wildcardPort(args []string, flag, who string) string {
	v, ok := flagValue(args, flag)
	host, port, err := net.SplitHostPort(v)
	if !ok || err != nil {
		c.addf("%s: the gateway command needs --%s HOST:PORT, has %q", composeFile, flag, v)
		return ""
	}
	if host != "" && host != "0.0.0.0" && host != "::" && host != "[::]" {
		c.addf("%s: --%s %s is not reachable by %s from other containers; listen on 0.0.0.0", composeFile, flag, v, who)
	}
	return port
}

func (c *checker) prometheus(svc map[string]any, gw gatewayWiring) {
	if svc == nil {
		return
	}
	// Built from deploy/prometheus/Dockerfile, Debian's package: no registry needed.
	if ctx := path.Clean(str(asMap(svc["build"])["context"])); ctx != "deploy/prometheus" {
		c.addf("%s: prometheus builds with context %q, want deploy/prometheus (its Dockerfile installs Debian's prometheus)", composeFile, ctx)
	} else {
		d := c.dockerfile("deploy/prometheus/Dockerfile")
		if !slices.ContainsFunc(d.final().all("RUN"), func(r string) bool {
			return strings.Contains(r, "apt-get install") && slices.Contains(strings.Fields(r), "prometheus")
		}) {
			c.addf("deploy/prometheus/Dockerfile: no RUN apt-get installs the prometheus package")
		}
		if ep := execForm(d.final().last("ENTRYPOINT")); len(ep) == 0 || path.Base(ep[0]) != "prometheus" {
			c.addf("deploy/prometheus/Dockerfile: ENTRYPOINT is %q, want prometheus", ep)
		}
	}
	conf := "/etc/prometheus/prometheus.yml"
	if v, ok := flagValue(words(svc["command"]), "config.file"); ok {
		conf = v
	}
	host := bindSource(svc, conf)
	if host == "" {
		c.addf("%s: prometheus does not mount a config file at %s", composeFile, conf)
		return
	}
	if host != "deploy/prometheus/prometheus.yml" {
		c.addf("%s: prometheus reads %s, want deploy/prometheus/prometheus.yml", composeFile, host)
	}
	doc := c.yamlDoc(host)
	if doc == nil {
		return
	}
	want := "gateway:" + gw.adminPort
	found := false
	for _, sc := range asList(doc["scrape_configs"]) {
		sc := asMap(sc)
		mp := str(sc["metrics_path"])
		if mp == "" {
			mp = "/metrics"
		}
		for _, st := range asList(sc["static_configs"]) {
			for _, tg := range asList(asMap(st)["targets"]) {
				if str(tg) == want {
					found = true
					if mp != "/metrics" {
						c.addf("%s: job %q scrapes %s at %s, want /metrics", host, str(sc["job_name"]), want, mp)
					}
				}
			}
		}
	}
	if !found {
		c.addf("%s: no scrape job targets %s (the gateway's --admin-listen port)", host, want)
	}
}

func (c *checker) grafana(services, svc map[string]any) {
	if svc == nil {
		return
	}
	if img := str(svc["image"]); !strings.HasPrefix(img, "grafana/grafana") {
		c.addf("%s: grafana image is %q, want grafana/grafana", composeFile, img)
	}
	prov := envMap(svc["environment"])["GF_PATHS_PROVISIONING"]
	if prov == "" {
		prov = "/etc/grafana/provisioning"
	}
	provHost := bindSource(svc, prov)
	if provHost == "" {
		c.addf("%s: grafana mounts nothing at %s", composeFile, prov)
		return
	}

	// Datasource: Prometheus on the compose network.
	dsUIDs := map[string]bool{}
	for _, f := range c.yamlFilesIn(path.Join(provHost, "datasources")) {
		doc := c.yamlDoc(f)
		for _, ds := range asList(doc["datasources"]) {
			ds := asMap(ds)
			if str(ds["type"]) != "prometheus" {
				continue
			}
			u := str(ds["url"])
			host, port, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
			if _, ok := services[host]; !ok || host != "prometheus" || port != "9090" {
				c.addf("%s: prometheus datasource url %q does not reach the prometheus service (http://prometheus:9090)", f, u)
				continue
			}
			dsUIDs[str(ds["uid"])] = true
		}
	}
	if len(dsUIDs) == 0 {
		c.addf("%s/datasources: no usable prometheus datasource", provHost)
	}

	// Dashboard provider -> deploy/grafana/dashboards/covetpy.json.
	found := false
	for _, f := range c.yamlFilesIn(path.Join(provHost, "dashboards")) {
		doc := c.yamlDoc(f)
		for _, p := range asList(doc["providers"]) {
			p := asMap(p)
			cpath := str(asMap(p["options"])["path"])
			host := bindSource(svc, cpath)
			if str(p["type"]) != "file" || host == "" {
				c.addf("%s: dashboard provider %q reads %q, which grafana does not mount from the repository", f, str(p["name"]), cpath)
				continue
			}
			if path.Join(host, path.Base(dashboardFile)) == dashboardFile {
				found = true
			}
		}
	}
	if !found {
		c.addf("%s/dashboards: no dashboard provider loads %s", provHost, dashboardFile)
	}
	c.dashboard(dsUIDs)
}

func (c *checker) yamlFilesIn(rel string) []string {
	ents, err := os.ReadDir(filepath.Join(c.root, rel))
	if err != nil {
		c.addf("%v", err)
		return nil
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yml") || strings.HasSuffix(e.Name(), ".yaml")) {
			out = append(out, path.Join(rel, e.Name()))
		}
	}
	if len(out) == 0 {
		c.addf("%s: no YAML files", rel)
	}
	return out
}

// --- the dashboard

var (
	promIdent   = regexp.MustCompile(`^[A-Za-z_:][A-Za-z0-9_:]*`)
	promNumber  = regexp.MustCompile(`^[0-9][0-9.eE+]*`)
	promString  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	labelValues = regexp.MustCompile(`^label_values\(\s*([^,]+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$`)
	quantileOf  = regexp.MustCompile(`histogram_quantile\(\s*([0-9.]+)\s*,`)
)

// promKeywords are PromQL words that are not metric names even when no "(" follows
// (binary operators, modifiers, and aggregations written as "sum by (...) (...)").
var promKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

func (c *checker) dashboard(dsUIDs map[string]bool) {
	b, err := os.ReadFile(filepath.Join(c.root, dashboardFile))
	if err != nil {
		c.addf("%v", err)
		return
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		c.addf("%s: invalid JSON: %v", dashboardFile, err)
		return
	}
	var exprs []string
	var panels func([]any)
	panels = func(ps []any) {
		for _, p := range ps {
			p := asMap(p)
			if p == nil {
				continue
			}
			c.datasourceUID(p["datasource"], dsUIDs, str(p["title"]))
			for _, t := range asList(p["targets"]) {
				t := asMap(t)
				c.datasourceUID(t["datasource"], dsUIDs, str(p["title"]))
				if e := str(t["expr"]); e != "" {
					exprs = append(exprs, e)
				} else {
					c.addf("%s: panel %q has a target without expr", dashboardFile, str(p["title"]))
				}
			}
			panels(asList(p["panels"]))
		}
	}
	panels(asList(dash["panels"]))
	if len(exprs) == 0 {
		c.addf("%s: no panel queries", dashboardFile)
	}

	used := map[string]bool{}
	quantiles := map[string]bool{}
	for _, e := range exprs {
		for _, m := range c.checkPromQL(e) {
			used[m] = true
		}
		if strings.Contains(e, "covet_request_duration_seconds_bucket") {
			for _, q := range quantileOf.FindAllStringSubmatch(e, -1) {
				quantiles[q[1]] = true
			}
		}
	}
	for _, m := range []string{
		"covet_requests_total", "covet_request_duration_seconds_bucket", "covet_queue_depth",
		"covet_workers", "covet_worker_restarts_total", "covet_connections_open",
		"covet_bytes_received_total", "covet_bytes_sent_total",
	} {
		if !used[m] {
			c.addf("%s: no panel shows %s", dashboardFile, m)
		}
	}
	for _, q := range []string{"0.5", "0.95", "0.99"} {
		if !quantiles[q] {
			c.addf("%s: no histogram_quantile(%s, ...) over covet_request_duration_seconds_bucket", dashboardFile, q)
		}
	}

	// Template variables: label_values(METRIC, LABEL) or PromQL.
	for _, v := range asList(asMap(dash["templating"])["list"]) {
		v := asMap(v)
		if str(v["type"]) != "query" {
			continue
		}
		c.datasourceUID(v["datasource"], dsUIDs, "variable "+str(v["name"]))
		q := str(asMap(v["query"])["query"])
		if q == "" {
			q = str(v["query"])
		}
		if m := labelValues.FindStringSubmatch(strings.TrimSpace(q)); m != nil {
			metrics := c.checkPromQL(m[1])
			if len(metrics) == 1 && !slices.Contains(seriesLabels(metrics[0]), m[2]) {
				c.addf("%s: variable %s: %s has no label %q", dashboardFile, str(v["name"]), metrics[0], m[2])
			}
		} else {
			c.checkPromQL(q)
		}
	}
}

func (c *checker) datasourceUID(ds any, uids map[string]bool, where string) {
	m := asMap(ds)
	if m == nil {
		return // inherits the panel's or the default datasource
	}
	if uid := str(m["uid"]); !uids[uid] {
		c.addf("%s: %s uses datasource uid %q, which is not provisioned", dashboardFile, where, uid)
	}
}

// seriesLabels returns the labels a series name may carry, or nil for names outside
// the contract.
func seriesLabels(series string) []string {
	if m, ok := covetMetrics[series]; ok && !m.histogram {
		return append(slices.Clone(m.labels), targetLabels...)
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(series, suf)
		if m, found := covetMetrics[base]; ok && found && m.histogram {
			l := append(slices.Clone(m.labels), targetLabels...)
			if suf == "_bucket" {
				l = append(l, "le")
			}
			return l
		}
	}
	return nil
}

// checkPromQL reports metric names outside the contract, label names a metric does
// not have, and grouping labels none of the query's metrics has; it returns the
// metric names used. It is a lexer, not a parser: enough for dashboard queries.
func (c *checker) checkPromQL(expr string) []string {
	bad := func(format string, args ...any) {
		c.addf("%s: query %q: %s", dashboardFile, expr, fmt.Sprintf(format, args...))
	}
	s := promString.ReplaceAllString(expr, `""`)
	var metrics, grouping []string
	matchers := map[string][]string{}
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
			i++
		}
	}
	// block returns the text between s[i] (an opening bracket) and its match.
	block := func(open, close byte) string {
		start, depth := i+1, 0
		for ; i < len(s); i++ {
			switch s[i] {
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					i++
					return s[start : i-1]
				}
			}
		}
		bad("unbalanced %c", open)
		return s[start:]
	}
	labelNames := func(in string) []string {
		var out []string
		for _, part := range strings.Split(in, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if n := promIdent.FindString(part); n != "" {
				out = append(out, n)
			} else {
				bad("cannot read label in %q", part)
			}
		}
		return out
	}
	for i < len(s) {
		skipSpace()
		if i >= len(s) {
			break
		}
		switch ch := s[i]; {
		case ch == '[':
			block('[', ']') // range or subquery: durations and Grafana variables
		case ch == '{':
			bad("selector without a metric name")
			block('{', '}')
		case ch >= '0' && ch <= '9' || ch == '.':
			i += max(1, len(promNumber.FindString(s[i:])))
		case promIdent.MatchString(s[i:]):
			id := promIdent.FindString(s[i:])
			i += len(id)
			skipSpace()
			switch {
			case id == "by" || id == "without" || id == "on" || id == "ignoring" || id == "group_left" || id == "group_right":
				if i < len(s) && s[i] == '(' {
					grouping = append(grouping, labelNames(block('(', ')'))...)
				}
			case i < len(s) && s[i] == '(':
				// a function or aggregation
			case promKeywords[id]:
			default:
				metrics = append(metrics, id)
				if i < len(s) && s[i] == '{' {
					for _, m := range strings.Split(block('{', '}'), ",") {
						if m = strings.TrimSpace(m); m != "" {
							matchers[id] = append(matchers[id], promIdent.FindString(m))
						}
					}
				}
			}
		default:
			i++
		}
	}
	if len(metrics) == 0 {
		bad("no metric")
	}
	var allLabels []string
	for _, m := range metrics {
		l := seriesLabels(m)
		if l == nil {
			if _, ok := covetMetrics[m]; ok {
				bad("%s is a histogram; query %s_bucket, _sum or _count", m, m)
			} else {
				bad("metric %s is not one the gateway exports", m)
			}
			continue
		}
		allLabels = append(allLabels, l...)
		for _, lbl := range matchers[m] {
			if !slices.Contains(l, lbl) {
				bad("%s has no label %q", m, lbl)
			}
		}
	}
	for _, g := range grouping {
		if !slices.Contains(allLabels, g) {
			bad("groups by %q, which none of its metrics has", g)
		}
	}
	if strings.Contains(s, "histogram_quantile") && !slices.Contains(grouping, "le") {
		bad("histogram_quantile needs the buckets aggregated by le")
	}
	return metrics
}

// --- Dockerfiles

type dockerInstr struct {
	cmd  string // upper case
	args string
}

type dockerStage struct {
	image, name string
	platform    string            // FROM --platform=
	vars        map[string]string // ARG and ENV in scope
	instrs      []dockerInstr
}

type dockerFile struct {
	rel    string
	global map[string]string
	stages []*dockerStage
}

var dockerVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// dockerfile parses a Dockerfile: instructions joined across line continuations,
// comments dropped, ARG and ENV values tracked per stage.
func (c *checker) dockerfile(rel string) *dockerFile {
	df := &dockerFile{rel: rel, global: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(c.root, rel))
	if err != nil {
		c.addf("%v", err)
		return df
	}
	var logical []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#") || (t == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur += strings.TrimSuffix(t, "\\") + " "
			continue
		}
		logical = append(logical, cur+t)
		cur = ""
	}
	if cur != "" {
		logical = append(logical, cur)
	}
	var st *dockerStage
	for _, l := range logical {
		if l == "" {
			continue
		}
		cmd, args, _ := strings.Cut(l, " ")
		cmd, args = strings.ToUpper(cmd), strings.TrimSpace(args)
		if cmd == "FROM" {
			f := strings.Fields(args)
			st = &dockerStage{vars: map[string]string{}}
			if len(f) > 0 {
				if p, ok := strings.CutPrefix(f[0], "--platform="); ok {
					st.platform = expand(p, df.global)
					f = f[1:]
				}
			}
			if len(f) > 0 {
				st.image = expand(f[0], df.global)
			}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			df.stages = append(df.stages, st)
			continue
		}
		if st == nil {
			if cmd == "ARG" {
				k, v, _ := strings.Cut(args, "=")
				df.global[k] = v
			}
			continue
		}
		switch cmd {
		case "ARG":
			k, v, hasDefault := strings.Cut(args, "=")
			if !hasDefault {
				v = df.global[k]
			}
			st.vars[k] = expand(v, st.vars)
		case "ENV":
			for k, v := range envPairs(args) {
				st.vars[k] = expand(v, st.vars)
			}
		}
		st.instrs = append(st.instrs, dockerInstr{cmd: cmd, args: expand(args, st.vars)})
	}
	return df
}

func expand(s string, vars map[string]string) string {
	return dockerVar.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		return vars[name]
	})
}

// envPairs reads ENV arguments: K=V pairs (values may be quoted) or the old "K V".
func envPairs(args string) map[string]string {
	out := map[string]string{}
	w := shellWords(args)
	if len(w) > 0 && !strings.Contains(w[0], "=") {
		out[w[0]] = strings.Join(w[1:], " ")
		return out
	}
	for _, kv := range w {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func (df *dockerFile) final() *dockerStage {
	if len(df.stages) == 0 {
		return &dockerStage{vars: map[string]string{}}
	}
	return df.stages[len(df.stages)-1]
}

func (df *dockerFile) finalEnv(k string) string { return df.final().vars[k] }

// all returns the final stage's instructions named cmd, or every stage's if any.
func (st *dockerStage) all(cmd string) []string {
	var out []string
	for _, in := range st.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func (st *dockerStage) last(cmd string) string {
	a := st.all(cmd)
	if len(a) == 0 {
		return ""
	}
	return a[len(a)-1]
}

// execForm reads CMD/ENTRYPOINT: a JSON array, or shell form.
func execForm(s string) []string {
	var out []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &out) == nil {
		return out
	}
	if s == "" {
		return nil
	}
	return []string{"/bin/sh", "-c", s}
}

var numericUser = regexp.MustCompile(`^([1-9][0-9]*):([1-9][0-9]*)$`)

// user returns the final stage's USER as uid, gid: numeric (so Kubernetes can check
// runAsNonRoot) and not root.
func (c *checker) user(df *dockerFile) (string, string) {
	u := df.final().last("USER")
	m := numericUser.FindStringSubmatch(u)
	if m == nil {
		c.addf("%s: USER of the final stage resolves to %q, want numeric non-root UID:GID (is the ARG declared in that stage?)", df.rel, u)
		return "", ""
	}
	return m[1], m[2]
}

func (c *checker) dockerfiles(gw gatewayWiring) {
	g := c.dockerfile(gatewayDocker)
	w := c.dockerfile(workerDocker)

	// Gateway: Go build stage, then a small runtime.
	if len(g.stages) < 2 {
		c.addf("%s: %d build stage(s), want a multi-stage build", gatewayDocker, len(g.stages))
	} else {
		build, run := g.stages[0], g.final()
		if !strings.HasPrefix(build.image, "golang:") {
			c.addf("%s: first stage is %q, want the golang toolchain image", gatewayDocker, build.image)
		}
		if !strings.Contains(run.image, "distroless") && !strings.Contains(run.image, "-slim") {
			c.addf("%s: runtime stage is %q, want a distroless or -slim image", gatewayDocker, run.image)
		}
		built := false
		for _, st := range g.stages[:len(g.stages)-1] {
			for _, r := range st.all("RUN") {
				if !strings.Contains(r, "go build") {
					continue
				}
				built = built || strings.Contains(r, "./gateway/cmd/covet-gateway")
				goflags := st.vars["GOFLAGS"]
				if m := regexp.MustCompile(`GOFLAGS=("[^"]*"|'[^']*'|\S+)`).FindStringSubmatch(r); m != nil {
					goflags = strings.Trim(m[1], `"'`)
				}
				if !slices.Contains(strings.Fields(goflags), "-ldflags=-checklinkname=0") {
					c.addf("%s: go build runs with GOFLAGS=%q, want -ldflags=-checklinkname=0", gatewayDocker, goflags)
				}
				if strings.Contains(r, "-ldflags") && !strings.Contains(r, "-checklinkname=0") {
					c.addf("%s: `%s` passes -ldflags without -checklinkname=0, and so replaces the one from GOFLAGS", gatewayDocker, r)
				}
			}
		}
		if !built {
			c.addf("%s: no stage runs go build ./gateway/cmd/covet-gateway", gatewayDocker)
		}
		if !slices.ContainsFunc(run.all("COPY"), func(s string) bool { return strings.HasPrefix(s, "--from=") }) {
			c.addf("%s: the runtime stage copies nothing from the build stage", gatewayDocker)
		}
	}
	ep := execForm(g.final().last("ENTRYPOINT"))
	if len(ep) != 1 || path.Base(ep[0]) != "covet-gateway" {
		c.addf("%s: ENTRYPOINT is %q, want [\"covet-gateway\"]", gatewayDocker, ep)
	}
	exposed := strings.Fields(strings.Join(g.final().all("EXPOSE"), " "))
	for _, p := range []string{"8000", "9090", gw.listenPort, gw.adminPort} {
		if p != "" && !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
			c.addf("%s: EXPOSE %v lacks port %s", gatewayDocker, exposed, p)
		}
	}

	// Worker: python:3.11-slim, the SDK and the example app, the socket env, the CMD.
	if img := w.final().image; !strings.HasPrefix(img, "python:3.11-slim") {
		c.addf("%s: base image is %q, want python:3.11-slim", workerDocker, img)
	}
	// The SDK: installed in the final stage, either from python-sdk or as the wheel an
	// earlier stage built from it (with gcc, so that its compiled core is in it).
	builtWheel := slices.ContainsFunc(w.stages[:len(w.stages)-1], func(st *dockerStage) bool {
		return slices.ContainsFunc(st.all("RUN"), func(r string) bool {
			return strings.Contains(r, "pip wheel") && strings.Contains(r, "python-sdk")
		})
	})
	if !slices.ContainsFunc(w.final().all("RUN"), func(r string) bool {
		return strings.Contains(r, "pip install") && (strings.Contains(r, "python-sdk") || builtWheel && strings.Contains(r, ".whl"))
	}) {
		c.addf("%s: no RUN pip installs the python-sdk (or a wheel an earlier stage built from it)", workerDocker)
	}
	if !slices.ContainsFunc(w.final().all("COPY"), func(s string) bool { return strings.HasPrefix(s, "examples/hello/app.py ") }) {
		c.addf("%s: does not COPY examples/hello/app.py", workerDocker)
	}
	if s := w.finalEnv("COVET_CONTROL_SOCKET"); s != gw.socket {
		c.addf("%s: ENV COVET_CONTROL_SOCKET=%q, the gateway's --control-socket is %q", workerDocker, s, gw.socket)
	}
	wcmd := strings.Join(append(execForm(w.final().last("ENTRYPOINT")), execForm(w.final().last("CMD"))...), " ")
	if !strings.Contains(wcmd, "python -m covet worker app:app") {
		c.addf("%s: ENTRYPOINT+CMD is %q, want it to run python -m covet worker app:app", workerDocker, wcmd)
	}

	// No "# syntax=" directive: BuildKit would fetch that frontend from Docker Hub,
	// which breaks builds where no registry is reachable (make compose-test's machines).
	for _, rel := range []string{gatewayDocker, workerDocker, "deploy/prometheus/Dockerfile"} {
		b, _ := os.ReadFile(filepath.Join(c.root, rel))
		if syntaxDirective.Match(b) {
			c.addf("%s: has a # syntax= directive, which needs Docker Hub at build time", rel)
		}
	}

	// Every stage of both images is pinned to linux/amd64: the Python ring client is
	// correct only with x86-64's store order.
	for _, df := range []*dockerFile{g, w} {
		for i, st := range df.stages {
			if st.platform != "linux/amd64" {
				c.addf("%s: stage %d (FROM %s) has --platform=%q, want --platform=linux/amd64", df.rel, i+1, st.image, st.platform)
			}
		}
	}

	// Same non-root uid/gid in both images.
	gu, gg := c.user(g)
	wu, wg := c.user(w)
	if gu != "" && wu != "" && (gu != wu || gg != wg) {
		c.addf("%s runs as %s:%s, %s as %s:%s; the uid/gid must match (SO_PEERCRED check, 0660 socket)", gatewayDocker, gu, gg, workerDocker, wu, wg)
	}
	c.uid, c.gid = gu, gg

	// What the Dockerfiles COPY from the context exists.
	for _, df := range []*dockerFile{g, w} {
		for _, st := range df.stages {
			for _, cp := range st.all("COPY") {
				if strings.HasPrefix(cp, "--from=") {
					continue
				}
				f := strings.Fields(cp)
				for _, src := range f[:max(0, len(f)-1)] {
					if strings.HasPrefix(src, "--") || src == "." {
						continue
					}
					if _, err := os.Stat(filepath.Join(c.root, src)); err != nil {
						c.addf("%s: COPY source %s: %v", df.rel, src, err)
					}
				}
			}
		}
	}
}

// dockerignore keeps the local environments out of the build context and none of the
// files the Dockerfiles copy.
func (c *checker) dockerignore() {
	b, err := os.ReadFile(filepath.Join(c.root, ".dockerignore"))
	if err != nil {
		c.addf("%v", err)
		return
	}
	var pats []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "!") {
			c.addf(".dockerignore: exception %q is not understood by this check", l)
		} else if l != "" && !strings.HasPrefix(l, "#") {
			pats = append(pats, strings.TrimPrefix(l, "/"))
		}
	}
	// match: a pattern against a context-relative path; a leading **/ matches any
	// number of directories.
	match := func(pat, p string) bool {
		if rest, ok := strings.CutPrefix(pat, "**/"); ok {
			parts := strings.Split(p, "/")
			for i := range parts {
				if ok, _ := path.Match(rest, strings.Join(parts[i:], "/")); ok {
					return true
				}
			}
			return false
		}
		ok, _ := path.Match(pat, p)
		return ok
	}
	// ignored: the path or one of its parent directories matches a pattern.
	ignored := func(p string) bool {
		parts := strings.Split(p, "/")
		for j := 1; j <= len(parts); j++ {
			for _, pat := range pats {
				if match(pat, strings.Join(parts[:j], "/")) {
					return true
				}
			}
		}
		return false
	}
	// .env: the README's quick start writes COVET_CONTROL_TOKEN there, and the gateway
	// image's build stage copies the whole context.
	for _, p := range []string{".venv", "bin", "bench/.venv", ".env"} {
		if !ignored(p) {
			c.addf(".dockerignore: %s is not ignored", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "gateway/cmd/covet-gateway/main.go", "python-sdk/pyproject.toml",
		"python-sdk/covet/__init__.py", "examples/hello/app.py", workerEntrypoint} {
		if ignored(p) {
			c.addf(".dockerignore: %s is needed by the images but ignored", p)
		}
	}
}

// composeTest: `make compose-test` runs deploy/compose-test.sh, which exists, is
// executable and builds the local base images from files that exist.
func (c *checker) composeTest() {
	b, err := os.ReadFile(filepath.Join(c.root, "Makefile"))
	if err != nil {
		c.addf("%v", err)
		return
	}
	recipe := regexp.MustCompile(`(?m)^compose-test:.*\n((?:\t.*\n)+)`).FindSubmatch(b)
	if recipe == nil || !strings.Contains(string(recipe[1]), composeTestScript) {
		c.addf("Makefile: no compose-test target that runs %s", composeTestScript)
	}
	st, err := os.Stat(filepath.Join(c.root, composeTestScript))
	if err != nil {
		c.addf("%v", err)
		return
	}
	if st.Mode()&0o111 == 0 {
		c.addf("%s is not executable", composeTestScript)
	}
	script, _ := os.ReadFile(filepath.Join(c.root, composeTestScript))
	for _, m := range regexp.MustCompile(`-f (deploy/base/\S+)`).FindAllStringSubmatch(string(script), -1) {
		if _, err := os.Stat(filepath.Join(c.root, m[1])); err != nil {
			c.addf("%s builds %s: %v", composeTestScript, m[1], err)
		}
	}
}

// --- Kubernetes

type k8sObject struct {
	file string
	doc  map[string]any
}

func (c *checker) k8s(gw gatewayWiring) {
	objs := map[string][]k8sObject{} // by kind
	var files []string
	ents, err := os.ReadDir(filepath.Join(c.root, k8sDir))
	if err != nil {
		c.addf("%v", err)
		return
	}
	var kustomization map[string]any
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		rel := path.Join(k8sDir, n)
		docs, err := c.yamlDocs(rel)
		if err != nil {
			continue // reported by allYAMLParses
		}
		if n == "kustomization.yaml" {
			kustomization = docs[0]
			continue
		}
		files = append(files, n)
		for _, d := range docs {
			kind, name := str(d["kind"]), str(asMap(d["metadata"])["name"])
			if str(d["apiVersion"]) == "" || kind == "" || name == "" {
				c.addf("%s: a document lacks apiVersion, kind or metadata.name", rel)
				continue
			}
			objs[kind] = append(objs[kind], k8sObject{rel, d})
		}
	}
	for _, kind := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "Secret"} {
		if len(objs[kind]) == 0 {
			c.addf("%s: no %s", k8sDir, kind)
		}
	}
	if kustomization != nil {
		var res []string
		for _, r := range asList(kustomization["resources"]) {
			res = append(res, str(r))
		}
		sort.Strings(res)
		sort.Strings(files)
		if !slices.Equal(res, files) {
			c.addf("%s/kustomization.yaml: resources %v, want every manifest %v", k8sDir, res, files)
		}
	}
	if len(objs["Deployment"]) != 1 {
		return
	}
	dep := objs["Deployment"][0]
	depName := str(asMap(dep.doc["metadata"])["name"])
	spec := asMap(dep.doc["spec"])
	tmpl := asMap(spec["template"])
	podLabels := stringMap(asMap(tmpl["metadata"])["labels"])
	pod := asMap(tmpl["spec"])
	if sel := stringMap(asMap(spec["selector"])["matchLabels"]); len(sel) == 0 || !subset(sel, podLabels) {
		c.addf("%s: selector.matchLabels %v does not match the pod template labels %v", dep.file, sel, podLabels)
	}

	// Shared identity: the images' uid/gid, as the pod's securityContext.
	sc := asMap(pod["securityContext"])
	for _, f := range []struct{ key, want string }{{"runAsUser", c.uid}, {"runAsGroup", c.gid}, {"fsGroup", c.gid}} {
		if got := fmt.Sprint(sc[f.key]); f.want != "" && got != f.want {
			c.addf("%s: pod securityContext.%s is %s, want %s (the images' USER)", dep.file, f.key, got, f.want)
		}
	}
	if sc["runAsNonRoot"] != true {
		c.addf("%s: pod securityContext.runAsNonRoot is not true", dep.file)
	}
	if arch := str(asMap(pod["nodeSelector"])["kubernetes.io/arch"]); arch != "amd64" {
		c.addf("%s: pod nodeSelector kubernetes.io/arch is %q, want amd64 (the images are linux/amd64)", dep.file, arch)
	}

	containers := map[string]map[string]any{}
	for _, ct := range asList(pod["containers"]) {
		ct := asMap(ct)
		containers[str(ct["name"])] = ct
	}
	gwc, wkc := containers["gateway"], containers["worker"]
	if gwc == nil || wkc == nil {
		c.addf("%s: want containers gateway and worker, have %v", dep.file, slices.Sorted(maps.Keys(containers)))
		return
	}

	// The gateway's flags agree with compose, and its ports with the flags.
	args := append(words(gwc["command"]), words(gwc["args"])...)
	if v, _ := flagValue(args, "workers"); v != "0" {
		c.addf("%s: gateway args must have --workers 0, has %q", dep.file, v)
	}
	sock, _ := flagValue(args, "control-socket")
	if sock != gw.socket {
		c.addf("%s: gateway --control-socket is %q, compose uses %q", dep.file, sock, gw.socket)
	}
	ports := map[string]int{} // name -> containerPort
	var numbers []int
	for _, p := range asList(gwc["ports"]) {
		p := asMap(p)
		ports[str(p["name"])] = asInt(p["containerPort"])
		numbers = append(numbers, asInt(p["containerPort"]))
	}
	resolve := func(port any) int {
		if n := asInt(port); n != 0 {
			if slices.Contains(numbers, n) {
				return n
			}
			return 0
		}
		return ports[str(port)]
	}
	flagPort := func(flag string) int {
		v, _ := flagValue(args, flag)
		_, p, err := net.SplitHostPort(v)
		n, _ := strconv.Atoi(p)
		if err != nil || !slices.Contains(numbers, n) {
			c.addf("%s: gateway --%s %q is not one of its containerPorts %v", dep.file, flag, v, numbers)
		}
		if p != "" && p != map[string]string{"listen": gw.listenPort, "admin-listen": gw.adminPort}[flag] {
			c.addf("%s: gateway --%s port %s differs from compose", dep.file, flag, p)
		}
		return n
	}
	httpPort, adminPort := flagPort("listen"), flagPort("admin-listen")
	for _, pr := range []struct{ key, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
		get := asMap(asMap(gwc[pr.key])["httpGet"])
		if str(get["path"]) != pr.path {
			c.addf("%s: gateway %s path is %q, want %s", dep.file, pr.key, str(get["path"]), pr.path)
		}
		if p := resolve(get["port"]); p == 0 || p != adminPort {
			c.addf("%s: gateway %s (liveness/readiness) port %v is not the admin port %d", dep.file, pr.key, get["port"], adminPort)
		}
	}

	// Both containers: the shared emptyDir at the socket's directory, the token from
	// one Secret key, resources.
	sockDir := path.Dir(gw.socket)
	vols := map[string]map[string]any{}
	for _, v := range asList(pod["volumes"]) {
		v := asMap(v)
		vols[str(v["name"])] = v
	}
	var mounted []string
	secretRefs := map[string]bool{}
	for _, name := range []string{"gateway", "worker"} {
		ct := containers[name]
		vol := ""
		for _, m := range asList(ct["volumeMounts"]) {
			m := asMap(m)
			if path.Clean(str(m["mountPath"])) == sockDir {
				vol = str(m["name"])
			}
		}
		mounted = append(mounted, vol)
		if vol == "" {
			c.addf("%s: container %s mounts nothing at %s (the control socket's directory)", dep.file, name, sockDir)
		} else if v := vols[vol]; v == nil || v["emptyDir"] == nil {
			c.addf("%s: volume %q at %s is not an emptyDir of the pod", dep.file, vol, sockDir)
		}
		ref := ""
		for _, e := range asList(ct["env"]) {
			e := asMap(e)
			if str(e["name"]) == "COVET_CONTROL_TOKEN" {
				sk := asMap(asMap(e["valueFrom"])["secretKeyRef"])
				ref = str(sk["name"]) + "/" + str(sk["key"])
			}
		}
		if ref == "" || ref == "/" {
			c.addf("%s: container %s gets COVET_CONTROL_TOKEN from no secretKeyRef", dep.file, name)
		} else {
			secretRefs[ref] = true
		}
		res := asMap(ct["resources"])
		for _, kind := range []string{"requests", "limits"} {
			r := asMap(res[kind])
			if r["cpu"] == nil || r["memory"] == nil {
				c.addf("%s: container %s lacks resources.%s cpu and memory", dep.file, name, kind)
			}
		}
	}
	if mounted[0] != "" && mounted[1] != "" && mounted[0] != mounted[1] {
		c.addf("%s: gateway and worker mount different volumes at %s", dep.file, sockDir)
	}
	if len(secretRefs) > 1 {
		c.addf("%s: gateway and worker take the token from different secret keys %v", dep.file, secretRefs)
	}
	for ref := range secretRefs {
		name, key, _ := strings.Cut(ref, "/")
		ok := false
		for _, s := range objs["Secret"] {
			if str(asMap(s.doc["metadata"])["name"]) == name {
				_, inData := asMap(s.doc["data"])[key]
				_, inString := asMap(s.doc["stringData"])[key]
				ok = inData || inString
			}
		}
		if !ok {
			c.addf("%s: no Secret %s with key %s", k8sDir, name, key)
		}
	}
	wsock := ""
	for _, e := range asList(wkc["env"]) {
		if e := asMap(e); str(e["name"]) == "COVET_CONTROL_SOCKET" {
			wsock = str(e["value"])
		}
	}
	if wsock != sock {
		c.addf("%s: worker COVET_CONTROL_SOCKET is %q, gateway --control-socket is %q", dep.file, wsock, sock)
	}

	// Services select the pods and reach the HTTP and admin ports.
	var sawHTTP, sawAdmin bool
	for _, s := range objs["Service"] {
		sp := asMap(s.doc["spec"])
		name := str(asMap(s.doc["metadata"])["name"])
		if sel := stringMap(sp["selector"]); len(sel) == 0 || !subset(sel, podLabels) {
			c.addf("%s: Service %s selector %v does not match the pod labels %v", s.file, name, sel, podLabels)
			continue
		}
		for _, p := range asList(sp["ports"]) {
			p := asMap(p)
			tp := p["targetPort"]
			if tp == nil {
				tp = p["port"]
			}
			switch target := resolve(tp); {
			case target == 0:
				c.addf("%s: Service %s targetPort %v is no gateway containerPort", s.file, name, tp)
			case target == httpPort:
				sawHTTP = true
				if asInt(p["port"]) != 80 {
					c.addf("%s: Service %s serves HTTP on port %v, want port 80", s.file, name, p["port"])
				}
			case target == adminPort:
				sawAdmin = true
				ann := stringMap(asMap(s.doc["metadata"])["annotations"])
				if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(adminPort) ||
					(ann["prometheus.io/path"] != "" && ann["prometheus.io/path"] != "/metrics") {
					c.addf("%s: Service %s exposes the admin port without prometheus.io/scrape \"true\", prometheus.io/port %q, prometheus.io/path /metrics (has %v)", s.file, name, strconv.Itoa(adminPort), ann)
				}
			}
		}
	}
	if !sawHTTP || !sawAdmin {
		c.addf("%s: want Services for the HTTP port (%v) and the admin port (%v), with matching targetPort", k8sDir, sawHTTP, sawAdmin)
	}

	// The HPA scales this Deployment on CPU.
	for _, h := range objs["HorizontalPodAutoscaler"] {
		sp := asMap(h.doc["spec"])
		if v := str(h.doc["apiVersion"]); v != "autoscaling/v2" {
			c.addf("%s: HorizontalPodAutoscaler apiVersion %s, want autoscaling/v2", h.file, v)
		}
		ref := asMap(sp["scaleTargetRef"])
		if str(ref["kind"]) != "Deployment" || str(ref["name"]) != depName || str(ref["apiVersion"]) != "apps/v1" {
			c.addf("%s: scaleTargetRef %v does not name Deployment %s (apps/v1)", h.file, ref, depName)
		}
		lo, hi := asInt(sp["minReplicas"]), asInt(sp["maxReplicas"])
		if lo < 1 || hi < lo {
			c.addf("%s: minReplicas %d, maxReplicas %d", h.file, lo, hi)
		}
		cpu := false
		for _, m := range asList(sp["metrics"]) {
			r := asMap(asMap(m)["resource"])
			t := asMap(r["target"])
			if str(r["name"]) == "cpu" && str(t["type"]) == "Utilization" && asInt(t["averageUtilization"]) > 0 {
				cpu = true
			}
		}
		if !cpu {
			c.addf("%s: no Resource metric on cpu with a Utilization target", h.file)
		}
	}
	for _, p := range objs["PodDisruptionBudget"] {
		if sel := stringMap(asMap(asMap(p.doc["spec"])["selector"])["matchLabels"]); len(sel) == 0 || !subset(sel, podLabels) {
			c.addf("%s: PodDisruptionBudget selector %v does not match the pod labels", p.file, sel)
		}
	}
}

// ---------------------------------------------------------------------------
// Helpers.

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

// copyDeployFiles copies the files the checks read into a temporary root.
func copyDeployFiles(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile := func(rel string) {
		src := filepath.Join(root, rel)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{composeFile, ".dockerignore", "go.mod", "go.sum", "examples/hello/app.py", "Makefile"} {
		copyFile(f)
	}
	for _, d := range []string{"deploy", "python-sdk/covet"} {
		filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if !e.IsDir() && !strings.Contains(p, "__pycache__") {
				rel, _ := filepath.Rel(root, p)
				copyFile(rel)
			}
			return nil
		})
	}
	copyFile("python-sdk/pyproject.toml")
	copyFile("gateway/cmd/covet-gateway/main.go")
	return dir
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func asInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	for k, x := range asMap(v) {
		out[k] = str(x)
	}
	return out
}

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// words reads a compose/Kubernetes command: a list, or a string split like a shell.
func words(v any) []string {
	if s, ok := v.(string); ok {
		return shellWords(s)
	}
	var out []string
	for _, x := range asList(v) {
		out = append(out, str(x))
	}
	return out
}

// shellWords splits on blanks, honouring single and double quotes.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '"' || ch == '\'':
			quote, in = ch, true
		case ch == ' ' || ch == '\t' || ch == '\n':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// flagValue finds -name/--name VALUE or -name=VALUE in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// envMap reads a compose environment: a map, or a list of K=V.
func envMap(v any) map[string]string {
	out := map[string]string{}
	switch e := v.(type) {
	case map[string]any:
		for k, x := range e {
			out[k] = str(x)
		}
	case []any:
		for _, x := range e {
			k, val, _ := strings.Cut(str(x), "=")
			out[k] = val
		}
	}
	return out
}

var interpolation = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?\}$`)

// tokenVariable returns the variable a token value is interpolated from; a literal
// token, or a variable with a literal fallback, is refused.
func tokenVariable(v string) (string, error) {
	m := interpolation.FindStringSubmatch(v)
	if m == nil {
		return "", fmt.Errorf("token %q is not ${VARIABLE}: do not write the secret into the file", v)
	}
	if strings.HasSuffix(m[2], "-") && m[3] != "" {
		return "", fmt.Errorf("token ${%s} falls back to a literal %q", m[1], m[3])
	}
	return m[1], nil
}

// composeMounts returns a service's mounts as (source, target); short and long syntax.
func composeMounts(svc map[string]any) [][2]string {
	var out [][2]string
	for _, v := range asList(svc["volumes"]) {
		if s, ok := v.(string); ok {
			parts := strings.Split(s, ":")
			if len(parts) >= 2 {
				out = append(out, [2]string{parts[0], parts[1]})
			}
			continue
		}
		m := asMap(v)
		out = append(out, [2]string{str(m["source"]), str(m["target"])})
	}
	return out
}

// namedVolumeAt returns the named volume (not a bind mount) a service mounts at dir.
func namedVolumeAt(svc map[string]any, dir string) string {
	for _, m := range composeMounts(svc) {
		if path.Clean(m[1]) == path.Clean(dir) && m[0] != "" && !strings.HasPrefix(m[0], ".") && !strings.HasPrefix(m[0], "/") {
			return m[0]
		}
	}
	return ""
}

// bindSource maps a path inside a service's container to the repository-relative
// path a bind mount serves it from ("" if none does).
func bindSource(svc map[string]any, target string) string {
	if target == "" {
		return ""
	}
	for _, m := range composeMounts(svc) {
		if !strings.HasPrefix(m[0], ".") {
			continue
		}
		t := path.Clean(m[1])
		if rest, ok := strings.CutPrefix(path.Clean(target), t); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
			return path.Clean(path.Join(m[0], rest))
		}
	}
	return ""
}

func hasHealthcheck(svc map[string]any) bool {
	hc := asMap(svc["healthcheck"])
	test := words(hc["test"])
	return hc != nil && hc["disable"] != true && len(test) > 0 && test[0] != "NONE"
}
