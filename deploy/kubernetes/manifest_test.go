// Package kubernetes_test checks the manifests in this directory: each
// decodes strictly into its Kubernetes API type (an unknown or misspelt
// field fails), the probes name paths the gate serves on the port they
// target, the pod runs as non-root on a read-only root filesystem, and the
// policy in the ConfigMap sits where the container reads it and parses.
// It lives in a test-only package so the Kubernetes API modules never reach
// the mcp-gate binary.
package kubernetes_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/mcp-gate/mcp-gate/internal/policy"
)

// decode reads file strictly into v.
func decode(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// flagValue returns the value following flag in args.
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

func TestManifests(t *testing.T) {
	var (
		dep appsv1.Deployment
		svc corev1.Service
		cm  corev1.ConfigMap
		sec corev1.Secret
		pdb policyv1.PodDisruptionBudget
	)
	for file, v := range map[string]any{
		"deployment.yaml": &dep, "service.yaml": &svc, "configmap.yaml": &cm, "secret.yaml": &sec, "pdb.yaml": &pdb,
	} {
		decode(t, file, v)
	}
	for _, k := range []struct{ got, want string }{
		{dep.Kind, "Deployment"}, {svc.Kind, "Service"}, {cm.Kind, "ConfigMap"}, {sec.Kind, "Secret"}, {pdb.Kind, "PodDisruptionBudget"},
	} {
		if k.got != k.want {
			t.Errorf("kind %q, want %q", k.got, k.want)
		}
	}

	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod does not require runAsNonRoot")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container root filesystem is not read-only, or privilege escalation is allowed")
	}

	// Probes: the paths the gate serves, on the --metrics-listen port.
	metricsPort := flagValue(c.Args, "--metrics-listen")
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no %s HTTP probe", name)
			continue
		}
		if p.HTTPGet.Path != want {
			t.Errorf("%s probe path %q, want %q", name, p.HTTPGet.Path, want)
		}
		port := p.HTTPGet.Port.String()
		for _, cp := range c.Ports {
			if cp.Name == port {
				port = ":" + p.HTTPGet.Port.String()
				if cp.ContainerPort > 0 {
					port = ":" + strconv.Itoa(int(cp.ContainerPort))
				}
			}
		}
		if port != metricsPort {
			t.Errorf("%s probe on %s, but --metrics-listen is %q", name, port, metricsPort)
		}
	}

	// The policy: the ConfigMap's key is the file --policy names, in the
	// directory the ConfigMap volume is mounted on (as a directory, so the
	// symlink swap reaches the pod), and it parses.
	polPath := flagValue(c.Args, "--policy")
	var vol string
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			vol = v.Name
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.Name == vol {
			mounted = true
			if m.SubPath != "" {
				t.Error("the policy is mounted with subPath: edits would never reach the pod")
			}
			if filepath.Dir(polPath) != m.MountPath {
				t.Errorf("--policy %s is not in the ConfigMap mount %s", polPath, m.MountPath)
			}
		}
	}
	if !mounted {
		t.Fatalf("ConfigMap %s is not mounted", cm.Name)
	}
	text, ok := cm.Data[filepath.Base(polPath)]
	if !ok {
		t.Fatalf("ConfigMap has no key %s", filepath.Base(polPath))
	}
	if _, problems, err := policy.Parse("configmap.yaml", []byte(text)); err != nil {
		t.Fatalf("the ConfigMap's policy does not parse: %v %v", err, problems)
	}

	// The on-behalf-of secret comes from the Secret.
	found := false
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == sec.Name {
			_, found = sec.StringData[e.ValueFrom.SecretKeyRef.Key]
		}
	}
	if !found {
		t.Error("no env var takes the Secret's key")
	}

	// The Service and the PDB select the pods.
	labels := dep.Spec.Template.Labels
	for name, sel := range map[string]map[string]string{"service": svc.Spec.Selector, "pdb": pdb.Spec.Selector.MatchLabels} {
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selects %s=%s, which the pods do not carry", name, k, v)
			}
		}
	}
}
