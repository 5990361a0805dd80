package deploy

import (
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The broker's listeners as the manifests name their ports.
func defaultPorts(t *testing.T) map[string]int {
	t.Helper()
	l := broker.DefaultConfig().Listeners
	out := map[string]int{}
	for name, addr := range map[string]string{"mqtt": l.MQTT.Address, "websocket": l.WebSocket.Address, "http": l.HTTP.Address, "admin": l.Admin.Address} {
		p, err := port(addr)
		if err != nil {
			t.Fatalf("default %s address %q: %v", name, addr, err)
		}
		out[name] = p
	}
	return out
}

// publicPorts are what the public Service must expose, no more.
var publicPorts = []string{"mqtt", "websocket", "http"}

// probePaths: which path each probe must ask, on the http port.
var probePaths = map[string]string{"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}

// checkVariant returns every way one variant (a kustomization directory)
// disagrees with the broker: ports, probes, config, services.
func checkVariant(objs []object, ports map[string]int, store string) []error {
	var errs []error
	bad := func(o object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s %s: %s", o.File, o.Kind, o.Metadata.Name, fmt.Sprintf(format, args...)))
	}
	byKind := map[string][]object{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	if n := len(byKind["StatefulSet"]) + len(byKind["Deployment"]); n != 1 {
		return append(errs, fmt.Errorf("%d workloads, want 1", n))
	}
	wo := append(byKind["StatefulSet"], byKind["Deployment"]...)[0]
	w := decode[workload](wo)
	pod := w.Spec.Template.Spec
	if !covers(w.Spec.Template.Metadata.Labels, w.Spec.Selector.MatchLabels) {
		bad(wo, "the selector %v does not select the pod template %v", w.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels)
	}
	if len(pod.Containers) != 1 {
		bad(wo, "%d containers, want 1", len(pod.Containers))
		return errs
	}
	c := pod.Containers[0]
	containerPorts := map[string]int{}
	for _, p := range c.Ports {
		containerPorts[p.Name] = p.ContainerPort
	}
	for name, want := range ports {
		if got := containerPorts[name]; got != want {
			bad(wo, "container port %q is %d, the broker's default is %d", name, got, want)
		}
	}
	for kind, pr := range map[string]*probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		switch {
		case pr == nil || pr.HTTPGet == nil:
			bad(wo, "no %s probe over HTTP", kind)
		case pr.HTTPGet.Path != probePaths[kind]:
			bad(wo, "%s probe asks %s, want %s", kind, pr.HTTPGet.Path, probePaths[kind])
		case containerPorts[pr.HTTPGet.Port] != ports["http"]:
			bad(wo, "%s probe on port %q, not the http listener (%d)", kind, pr.HTTPGet.Port, ports["http"])
		}
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		bad(wo, "no preStop sleep: clients would still be sent to a stopping pod")
	} else if grace := pod.TerminationGracePeriodSeconds; grace < c.Lifecycle.PreStop.Sleep.Seconds+30 {
		bad(wo, "terminationGracePeriodSeconds %d leaves under 30 s for the drain after a %d s preStop", grace, c.Lifecycle.PreStop.Sleep.Seconds)
	}
	if !pod.SecurityContext.RunAsNonRoot {
		bad(wo, "runAsNonRoot is not set")
	}

	// The config: what --config names, mounted from the ConfigMap, parsed
	// by the broker itself, listening where the container ports say.
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		bad(wo, "no --config in the args %v", c.Args)
		return errs
	}
	configPath := c.Args[i+1]
	mounts := map[string]string{} // mount path -> volume
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	cmName := ""
	for _, v := range pod.Volumes {
		if v.Name == mounts[path.Dir(configPath)] && v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	if cmName == "" {
		bad(wo, "%s is not in a mounted ConfigMap", configPath)
		return errs
	}
	var cfgText string
	for _, o := range byKind["ConfigMap"] {
		if o.Metadata.Name == cmName {
			cfgText = decode[configMap](o).Data[path.Base(configPath)]
		}
	}
	if cfgText == "" {
		bad(wo, "ConfigMap %s has no key %s", cmName, path.Base(configPath))
		return errs
	}
	cfg, err := broker.ParseConfig([]byte(cfgText))
	if err != nil {
		bad(wo, "the broker refuses ConfigMap %s: %v", cmName, err)
		return errs
	}
	if cfg.Store != store {
		bad(wo, "store %q, want %q", cfg.Store, store)
	}
	l := cfg.Listeners
	for name, addr := range map[string]string{"mqtt": l.MQTT.Address, "websocket": l.WebSocket.Address, "http": l.HTTP.Address, "admin": l.Admin.Address} {
		if p, err := port(addr); err != nil || p != containerPorts[name] {
			bad(wo, "the config's %s listener %q is not on container port %d", name, addr, containerPorts[name])
		}
	}
	if l.WebSocket.Path != broker.DefaultConfig().Listeners.WebSocket.Path {
		bad(wo, "websocket path %q, the default is %q", l.WebSocket.Path, broker.DefaultConfig().Listeners.WebSocket.Path)
	}
	switch store {
	case "embedded":
		if w.Spec.Replicas != 1 {
			bad(wo, "%d replicas of the embedded store, want exactly 1", w.Spec.Replicas)
		}
		claim := mounts[cfg.DataDir]
		if claim == "" || !slices.ContainsFunc(w.Spec.VolumeClaimTemplates, func(v claimTemplate) bool { return v.Metadata.Name == claim }) {
			bad(wo, "data_dir %s is not on a volumeClaimTemplate", cfg.DataDir)
		}
	case "redis":
		if w.Spec.Replicas < 2 {
			bad(wo, "%d replicas on Redis: the point is several nodes", w.Spec.Replicas)
		}
		nodeID := false
		for _, e := range c.Env {
			if e.Name == broker.NodeIDEnv && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
				e.ValueFrom.FieldRef.FieldPath == "metadata.labels['apps.kubernetes.io/pod-index']" {
				nodeID = true
			}
		}
		if !nodeID || wo.Kind != "StatefulSet" {
			bad(wo, "nodes need distinct, stable node ids: a StatefulSet with %s from the pod index", broker.NodeIDEnv)
		}
	}

	// Services select the pods and reach named container ports; the
	// public one exposes the public listeners, never the admin port.
	public := 0
	for _, o := range byKind["Service"] {
		s := decode[service](o)
		if !covers(w.Spec.Template.Metadata.Labels, s.Spec.Selector) {
			bad(o, "the selector %v does not select the pods", s.Spec.Selector)
		}
		exposed := map[string]bool{}
		for _, p := range s.Spec.Ports {
			if _, ok := containerPorts[p.TargetPort]; !ok {
				bad(o, "targetPort %q is no container port", p.TargetPort)
			}
			if p.Port != containerPorts[p.TargetPort] {
				bad(o, "port %d for %s, the broker listens on %d", p.Port, p.TargetPort, containerPorts[p.TargetPort])
			}
			exposed[p.TargetPort] = true
		}
		if s.Spec.Type != "LoadBalancer" && s.Spec.Type != "NodePort" {
			continue
		}
		public++
		if exposed["admin"] {
			bad(o, "a %s Service exposes the admin port", s.Spec.Type)
		}
		for _, name := range publicPorts {
			if !exposed[name] {
				bad(o, "the public Service does not expose %s", name)
			}
		}
	}
	if public != 1 {
		errs = append(errs, fmt.Errorf("%d public Services, want 1", public))
	}
	if w.Spec.ServiceName != "" && !slices.ContainsFunc(byKind["Service"], func(o object) bool { return o.Metadata.Name == w.Spec.ServiceName }) {
		bad(wo, "serviceName %s names no Service", w.Spec.ServiceName)
	}
	// A network policy rule open to everyone (no from) must not include
	// the admin port.
	for _, o := range byKind["NetworkPolicy"] {
		for _, rule := range decode[networkPolicy](o).Spec.Ingress {
			for _, p := range rule.Ports {
				if _, ok := containerPorts[p.Port]; !ok {
					bad(o, "port %q is no container port", p.Port)
				}
				if p.Port == "admin" && len(rule.From) == 0 {
					bad(o, "the admin port is open to every source")
				}
			}
		}
	}
	return errs
}

func k8sDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(mqtttest.ModuleRoot(t), "deploy", "k8s")
}

// setConfigEnv gives ParseConfig the secret a pod gets from its Secret,
// and nothing else from this process's environment.
func setConfigEnv(t *testing.T) {
	t.Setenv(broker.SecretEnv, "a-secret-the-pod-gets-from-its-Secret-0123")
	t.Setenv(broker.NodeIDEnv, "")
	t.Setenv(broker.RedisPasswordEnv, "")
}

// Every file under deploy/k8s parses, and each variant agrees with the
// broker's defaults (the ports, the probe paths, its own config).
func TestKubernetesManifests(t *testing.T) {
	setConfigEnv(t)
	root := k8sDir(t)
	files, err := filepath.Glob(filepath.Join(root, "*", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under %s (%v)", root, err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		if _, err := readObjects(f); err != nil {
			t.Errorf("%v", err)
		}
	}
	ports := defaultPorts(t)
	for _, v := range []string{"embedded", "redis"} {
		t.Run(v, func(t *testing.T) {
			objs, err := variant(filepath.Join(root, v))
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range checkVariant(objs, ports, v) {
				t.Error(err)
			}
		})
	}
}

// The checks see drift: each row breaks a copy of the manifests one way.
func TestKubernetesManifestChecksCatchDrift(t *testing.T) {
	setConfigEnv(t)
	tests := []struct {
		name, variant, file, old, new, wantErr string
	}{
		{"readiness on /healthz", "embedded", "embedded/statefulset.yaml", "path: /readyz", "path: /healthz", "readiness probe asks /healthz"},
		{"a container port moved", "redis", "redis/statefulset.yaml", "containerPort: 1883", "containerPort: 11883", `container port "mqtt" is 11883`},
		{"the config listens elsewhere", "embedded", "embedded/configmap.yaml", `address: ":8083"`, `address: ":9083"`, "websocket listener"},
		{"admin port made public", "redis", "common/service.yaml", "targetPort: http\n", "targetPort: http\n    - name: admin\n      port: 9090\n      targetPort: admin\n", "exposes the admin port"},
		{"an unknown config key", "embedded", "embedded/configmap.yaml", "store: embedded", "store: embedded\n    stroe: redis", "the broker refuses"},
		{"two embedded replicas", "embedded", "embedded/statefulset.yaml", "replicas: 1", "replicas: 2", "want exactly 1"},
		{"data_dir off the volume", "embedded", "embedded/configmap.yaml", "data_dir: /data", "data_dir: /tmp/data", "not on a volumeClaimTemplate"},
		{"no node id from the pod index", "redis", "redis/statefulset.yaml", "- name: INBOXMQ_NODE_ID", "- name: UNUSED", "distinct, stable node ids"},
		{"no preStop", "redis", "redis/statefulset.yaml", "preStop:", "postStart:", "no preStop sleep"},
		{"admin open to all", "embedded", "common/networkpolicy.yaml", "        - port: http\n", "        - port: http\n        - port: admin\n", "open to every source"},
	}
	ports := defaultPorts(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(k8sDir(t))); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, tt.file)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tt.old) {
				t.Fatalf("%s no longer holds %q: update this row", tt.file, tt.old)
			}
			if err := os.WriteFile(file, []byte(strings.Replace(string(data), tt.old, tt.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			objs, err := variant(filepath.Join(dir, tt.variant))
			if err != nil {
				t.Fatal(err)
			}
			errs := checkVariant(objs, ports, tt.variant)
			if !slices.ContainsFunc(errs, func(e error) bool { return strings.Contains(e.Error(), tt.wantErr) }) {
				t.Fatalf("no error containing %q; got %v", tt.wantErr, errs)
			}
		})
	}
}

// The probe paths the manifests name are served on the http listener.
func TestProbePathsServed(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	for kind, p := range probePaths {
		resp, err := http.Get("http://" + b.HTTPAddr() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s probe %s: %d", kind, p, resp.StatusCode)
		}
	}
}
