package pods

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type mapSource struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (m mapSource) ConfigMap(_ context.Context, _, name string) (*corev1.ConfigMap, error) {
	if c, ok := m.cms[name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (m mapSource) Secret(_ context.Context, _, name string) (*corev1.Secret, error) {
	if s, ok := m.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func TestMakeEnv(t *testing.T) {
	yes := true
	src := mapSource{
		cms:     map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"mode": "fast", "bad-key": "x", "LEVEL": "3"}}},
		secrets: map[string]*corev1.Secret{"sec": {Data: map[string][]byte{"password": []byte("hunter2")}}},
	}
	cmKey := func(name, key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: &optional}}
	}
	tests := []struct {
		name      string
		env       []corev1.EnvVar
		envFrom   []corev1.EnvFromSource
		resources corev1.ResourceRequirements
		want      map[string]string
		absent    []string
		wantErr   string
	}{{
		name: "kubernetes service points at the real API",
		want: map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443", "KUBERNETES_PORT": "tcp://10.0.0.1:6443"},
	}, {
		name: "plain values and expansion",
		env:  []corev1.EnvVar{{Name: "A", Value: "one"}, {Name: "B", Value: "$(A)-two"}, {Name: "C", Value: "$$(A) $(NOPE)"}},
		want: map[string]string{"A": "one", "B": "one-two", "C": "$(A) $(NOPE)"},
	}, {
		name: "fieldRef",
		env: []corev1.EnvVar{
			{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "TIER", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
		},
		want: map[string]string{"NAME": "p", "NS": "default", "IP": "10.0.0.5", "NODE": "node1", "TIER": "web"},
	}, {
		name: "resourceFieldRef with divisor, rounded up",
		env: []corev1.EnvVar{
			{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CPUS", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
		},
		resources: corev1.ResourceRequirements{
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1500Ki")},
		},
		want: map[string]string{"CPU": "250", "MEM": "2", "CPUS": "1"},
	}, {
		name: "configMapKeyRef and secretKeyRef",
		env: []corev1.EnvVar{
			{Name: "MODE", ValueFrom: cmKey("cfg", "mode", false)},
			{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
		},
		want: map[string]string{"MODE": "fast", "PW": "hunter2"},
	}, {
		name:   "optional missing key and object are skipped",
		env:    []corev1.EnvVar{{Name: "X", ValueFrom: cmKey("cfg", "nokey", true)}, {Name: "Y", ValueFrom: cmKey("nocfg", "k", true)}},
		absent: []string{"X", "Y"},
	}, {
		name:    "required missing key",
		env:     []corev1.EnvVar{{Name: "X", ValueFrom: cmKey("cfg", "nokey", false)}},
		wantErr: "couldn't find key nokey in ConfigMap default/cfg",
	}, {
		name:    "required missing object",
		env:     []corev1.EnvVar{{Name: "X", ValueFrom: cmKey("nocfg", "k", false)}},
		wantErr: `configmap "nocfg" not found`,
	}, {
		name: "envFrom with prefix, env wins",
		envFrom: []corev1.EnvFromSource{
			{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nosec"}, Optional: &yes}},
		},
		env:  []corev1.EnvVar{{Name: "CFG_LEVEL", Value: "9"}},
		want: map[string]string{"CFG_mode": "fast", "CFG_LEVEL": "9", "CFG_bad-key": "x"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod("p", ctr("app"))
			pod.Labels = map[string]string{"tier": "web"}
			c := &pod.Spec.Containers[0]
			c.Env, c.EnvFrom, c.Resources = tt.env, tt.envFrom, tt.resources
			got, err := makeEnv(context.Background(), envInput{
				Pod: pod, Container: c, NodeIP: "10.0.0.5", APIHost: "10.0.0.1", APIPort: 6443,
				NodeCPU: resource.MustParse("1"), NodeMemory: resource.MustParse("1Gi"), Source: src,
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for _, e := range got {
				if _, dup := m[e.Name]; dup {
					t.Errorf("%s twice", e.Name)
				}
				m[e.Name] = e.Value
			}
			for k, v := range tt.want {
				if m[k] != v {
					t.Errorf("%s = %q, want %q", k, m[k], v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := m[k]; ok {
					t.Errorf("%s set", k)
				}
			}
		})
	}
}
