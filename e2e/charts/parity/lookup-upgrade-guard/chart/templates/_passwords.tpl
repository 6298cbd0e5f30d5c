{{/* bitnami/common's validation on upgrade: without a password given, the one the release's
Secret holds (read with lookup) must be there, else the upgrade is refused. Rendering an
upgrade without the cluster (helm template) fails here, as bitnami/etcd does. */}}
{{- define "lookup-upgrade-guard.rootPassword" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (printf "%s-root" .Release.Name) -}}
{{- if .Values.auth.rootPassword -}}
{{- .Values.auth.rootPassword | b64enc -}}
{{- else if and $secret $secret.data (index $secret.data "root-password") -}}
{{- index $secret.data "root-password" -}}
{{- else if .Release.IsUpgrade -}}
{{- fail "\nPASSWORDS ERROR: You must provide your current passwords when upgrading the release.\n    'auth.rootPassword' must not be empty, please add '--set auth.rootPassword=$ROOT_PASSWORD' to the command." -}}
{{- else -}}
{{- randAlphaNum 10 | b64enc -}}
{{- end -}}
{{- end -}}
