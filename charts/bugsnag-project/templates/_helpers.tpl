{{/* Chart name. */}}
{{- define "bugsnag-project.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of the release's object names: the release name unless overridden. */}}
{{- define "bugsnag-project.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels. */}}
{{- define "bugsnag-project.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bugsnag-project.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that identify the release's objects. */}}
{{- define "bugsnag-project.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bugsnag-project.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of the published Secret. */}}
{{- define "bugsnag-project.secretName" -}}
{{- default (printf "%s-bugsnag" .Release.Name) .Values.secretName }}
{{- end }}

{{/* What the API key is derived from (see values.yaml, apiKeySalt). */}}
{{- define "bugsnag-project.keySeed" -}}
{{- printf "%s/%s/%s" .Release.Namespace .Release.Name .Values.apiKeySalt }}
{{- end }}

{{/*
The Secret the Job publishes, as the simulator's on-complete annotation declares it (a JSON
list of manifests). The container builds the same object in a real cluster.
*/}}
{{- define "bugsnag-project.publishedSecret" -}}
{{- $key := include "bugsnag-project.keySeed" . | sha256sum | trunc 32 -}}
{{- $labels := dict "app.kubernetes.io/name" (include "bugsnag-project.name" .) "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/component" "api-key" -}}
{{- $meta := dict "name" (include "bugsnag-project.secretName" .) "labels" $labels -}}
{{- list (dict "apiVersion" "v1" "kind" "Secret" "metadata" $meta "type" "Opaque" "data" (dict "BUGSNAG_API_KEY" ($key | b64enc))) | toJson -}}
{{- end }}
