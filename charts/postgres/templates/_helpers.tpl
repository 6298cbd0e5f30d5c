{{/* Chart name. */}}
{{- define "postgres.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the release's objects: the release name unless overridden. */}}
{{- define "postgres.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels. */}}
{{- define "postgres.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "postgres.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "postgres.selectorLabels" -}}
app.kubernetes.io/name: {{ include "postgres.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The image reference, registry/repository:tag. */}}
{{- define "postgres.image" -}}
{{- $registry := .Values.image.registry | trimSuffix "/" -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .Values.image.repository (toString .Values.image.tag) -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) -}}
{{- end -}}
{{- end }}

{{/*
The password: auth.password, else derived from namespace, release and salt. Deterministic on
purpose (see values.yaml): `lookup` sees nothing under `helm template`.
*/}}
{{- define "postgres.password" -}}
{{- if .Values.auth.password -}}
{{- .Values.auth.password -}}
{{- else -}}
{{- printf "%s/%s/%s" .Release.Namespace .Release.Name .Values.passwordSalt | sha256sum | trunc 32 -}}
{{- end -}}
{{- end }}

{{/* The client Service's fully qualified DNS name. */}}
{{- define "postgres.host" -}}
{{- printf "%s.%s.svc.%s" (include "postgres.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end }}
