package validate

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExternalSecret mirrors the external-secrets.io/v1 fields GameMetrics uses.
type ExternalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		RefreshInterval string `json:"refreshInterval"`
		SecretStoreRef  struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"secretStoreRef"`
		Target struct {
			Name     string `json:"name"`
			Template *struct {
				Data map[string]string `json:"data"`
			} `json:"template,omitempty"`
		} `json:"target"`
		Data []struct {
			SecretKey string    `json:"secretKey"`
			RemoteRef remoteRef `json:"remoteRef"`
		} `json:"data,omitempty"`
		DataFrom []struct {
			Extract remoteRef `json:"extract"`
		} `json:"dataFrom,omitempty"`
	} `json:"spec"`
}

type remoteRef struct {
	Key      string `json:"key"`
	Property string `json:"property,omitempty"`
}

// remoteKeys lists every Secrets Manager key the ExternalSecret reads.
func (es *ExternalSecret) remoteKeys() []string {
	var keys []string
	for _, d := range es.Spec.Data {
		keys = append(keys, d.RemoteRef.Key)
	}
	for _, d := range es.Spec.DataFrom {
		keys = append(keys, d.Extract.Key)
	}
	return keys
}

// secretsStore is the only store the ExternalSecrets may use.
const secretsStore = "aws-secrets-manager"

func checkExternalSecret(d Document) (*ExternalSecret, []Problem) {
	es, ps := decodeStrict[ExternalSecret](d)
	if es == nil {
		return nil, ps
	}
	if es.Spec.SecretStoreRef.Kind != "ClusterSecretStore" || es.Spec.SecretStoreRef.Name != secretsStore {
		ps = append(ps, d.problem("spec.secretStoreRef", "must be ClusterSecretStore %s (knative/platform/cluster)", secretsStore))
	}
	if es.Spec.Target.Name == "" {
		ps = append(ps, d.problem("spec.target.name", "required: the Secret the functions read"))
	}
	if es.Spec.RefreshInterval == "" || es.Spec.RefreshInterval == "0" {
		ps = append(ps, d.problem("spec.refreshInterval", "must be set: rotated credentials reach the cluster only on refresh"))
	}
	keys := es.remoteKeys()
	if len(keys) == 0 {
		ps = append(ps, d.problem("spec", "reads no remote key"))
	}
	for _, k := range keys {
		// Only the environment's own secrets (Terraform names them
		// gamemetrics-<env>/...), or the RDS-managed master secret.
		if !strings.HasPrefix(k, "${CLUSTER_NAME}/") && k != "${RDS_MASTER_SECRET_ARN}" {
			ps = append(ps, d.problem("spec", "remote key %q is not one of the environment's secrets (${CLUSTER_NAME}/... or ${RDS_MASTER_SECRET_ARN})", k))
		}
	}
	return es, ps
}

// checkJob: the migration Job runs under the restricted Pod Security
// Standard like everything else in the namespace, every container pinned.
func checkJob(d Document) (*batchv1.Job, []Problem) {
	j, ps := decodeStrict[batchv1.Job](d)
	if j == nil {
		return nil, ps
	}
	spec := j.Spec.Template.Spec
	if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		ps = append(ps, d.problem("spec.template.spec.restartPolicy", "must be Never or OnFailure"))
	}
	if j.Spec.ActiveDeadlineSeconds == nil {
		ps = append(ps, d.problem("spec.activeDeadlineSeconds", "must be set: a hung migration must fail the deploy, not block it"))
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for i, c := range all {
		field := fmt.Sprintf("spec.template.spec.containers[%s]", c.Name)
		if i < len(spec.InitContainers) {
			field = fmt.Sprintf("spec.template.spec.initContainers[%s]", c.Name)
		}
		ps = append(ps, restrictedProblems(d, field, spec.SecurityContext, c.SecurityContext)...)
		if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
			ps = append(ps, d.problem(field+".securityContext.readOnlyRootFilesystem", "must be true"))
		}
		if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") && c.Image != "gamemetrics-cli" && c.Image != "gamemetrics" {
			ps = append(ps, d.problem(field+".image", "pin the image (a version tag, or the gamemetrics-cli placeholder deploy.sh pins by digest), got %q", c.Image))
		}
		for j, e := range c.Env {
			if e.Value != "" && looksSecret(e.Name) {
				ps = append(ps, d.problem(fmt.Sprintf("%s.env[%d]", field, j), "%s holds a secret and must come from a secretKeyRef", e.Name))
			}
		}
	}
	return j, ps
}
