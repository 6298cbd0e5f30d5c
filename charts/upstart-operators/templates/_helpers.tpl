{{/*
Helpers of the upstart-operators chart. Most take a context `dict "root" $ "key" KEY`, where KEY
is one of the `operators` keys: helmRelease, service, environment.
*/}}

{{/* The operator keys, in install order. */}}
{{- define "upstart.keys" -}}
helmRelease service environment
{{- end }}

{{/* The binary (and default object name) of an operator. Argument: the key. */}}
{{- define "upstart.binary" -}}
{{- get (dict "helmRelease" "upstart-helmrelease-operator" "service" "upstart-service-operator" "environment" "upstart-environment-operator") . -}}
{{- end }}

{{/* The name of an operator's namespaced objects (Deployment, ServiceAccount, Service, Roles). */}}
{{- define "upstart.name" -}}
{{- printf "%s%s" .root.Values.namePrefix (include "upstart.binary" .key) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* The name of an operator's cluster-scoped objects: qualified by the release namespace, so
installations in two namespaces do not collide. A DNS subdomain (no `:`), which every API server
and tool accepts. */}}
{{- define "upstart.clusterName" -}}
{{- printf "%s-%s" (include "upstart.name" .) .root.Release.Namespace | trunc 253 | trimSuffix "-" -}}
{{- end }}

{{/* The name of an object the operators share (repository ConfigMap, dashboard, rules). Argument: root. */}}
{{- define "upstart.sharedName" -}}
{{- printf "%supstart-operators" .Values.namePrefix | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Labels of every object. Argument: root. */}}
{{- define "upstart.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: upstart
{{- end }}

{{/* Labels of a shared object. Argument: root. */}}
{{- define "upstart.sharedLabels" -}}
app.kubernetes.io/name: upstart-operators
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "upstart.commonLabels" . }}
{{- end }}

{{/* Labels selecting an operator's pods. */}}
{{- define "upstart.selectorLabels" -}}
app.kubernetes.io/name: {{ include "upstart.binary" .key }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* Labels of an operator's objects. */}}
{{- define "upstart.labels" -}}
{{ include "upstart.selectorLabels" . }}
app.kubernetes.io/component: operator
{{ include "upstart.commonLabels" .root }}
{{- end }}

{{/* The operator's image reference: its override merged over the shared image. */}}
{{- define "upstart.image" -}}
{{- $op := index .root.Values.operators .key -}}
{{- $image := merge (deepCopy ($op.image | default dict)) .root.Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository ($image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{/* The namespace of the leader election Leases. Argument: root. */}}
{{- define "upstart.leaseNamespace" -}}
{{- .Values.leaderElection.namespace | default .Release.Namespace -}}
{{- end }}

{{/* The repository configuration document the HelmRelease operator reads
(crates/chart-source/src/config.rs). Byte limits are written as integers: Helm reads numbers
from values as floats, and toYaml would print large ones in exponent form. Argument: root. */}}
{{- define "upstart.repositoryConfig" -}}
repositories:
{{- if .Values.repositories }}
{{- toYaml .Values.repositories | nindent 2 }}
{{- else }} {}
{{- end }}
allowUnlisted: {{ .Values.allowUnlisted }}
unlistedPlainHttp: {{ .Values.unlistedPlainHttp }}
indexTtl: {{ .Values.indexTtl | quote }}
{{- with .Values.chartLimits }}
limits:
  {{- range $key, $value := . }}
  {{- if eq $key "fetchTimeout" }}
  {{ $key }}: {{ $value | quote }}
  {{- else }}
  {{ $key }}: {{ $value | int64 }}
  {{- end }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The names of the credential Secrets the repositories reference. Argument: root. */}}
{{- define "upstart.credentialSecrets" -}}
{{- $names := list -}}
{{- range $alias, $repository := .Values.repositories -}}
{{- with $repository.credentialsSecret -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- $names | uniq | sortAlpha | join "," -}}
{{- end }}

{{/* The name of a user-facing ClusterRole (`upstart-<role>-<release namespace>`), qualified by
the release namespace like the operators' cluster-scoped objects. Argument: `dict "root" $
"role" ROLE`. */}}
{{- define "upstart.userRoleName" -}}
{{- printf "%supstart-%s-%s" .root.Values.namePrefix .role .root.Release.Namespace | trunc 253 | trimSuffix "-" -}}
{{- end }}

{{/* Labels of a user-facing ClusterRole. Argument: root. */}}
{{- define "upstart.userRoleLabels" -}}
{{ include "upstart.sharedLabels" . }}
app.kubernetes.io/component: user-role
{{- end }}

{{/* The ClusterRole bound to each environment's release account (`tenancy`). Argument: root. */}}
{{- define "upstart.releaseClusterRole" -}}
{{- .Values.tenancy.releaseClusterRole | default (printf "%supstart-release-%s" .Values.namePrefix .Release.Namespace | trunc 253 | trimSuffix "-") -}}
{{- end }}

{{/* The ServiceAccount names the HelmRelease operator may impersonate, comma-separated
(`tenancy`). Argument: root. */}}
{{- define "upstart.releaseAccounts" -}}
{{- concat (list "upstart-release" .Values.tenancy.defaultServiceAccount) .Values.tenancy.serviceAccountNames | compact | uniq | join "," -}}
{{- end }}
