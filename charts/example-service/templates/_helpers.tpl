{{/* Chart name. */}}
{{- define "example-service.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the release's objects: the release name unless overridden. */}}
{{- define "example-service.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 59 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels. */}}
{{- define "example-service.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "example-service.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "example-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "example-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
global.env as a map of strings: strings verbatim, null as "", anything else as JSON. Values
are data, never passed through `tpl`, so `{{` in them stays as it is.
*/}}
{{- define "example-service.env" -}}
{{- $env := dict -}}
{{- range $name, $value := ((.Values.global).env | default dict) -}}
{{- if kindIs "invalid" $value -}}
{{- $_ := set $env $name "" -}}
{{- else if kindIs "string" $value -}}
{{- $_ := set $env $name $value -}}
{{- else -}}
{{- $_ := set $env $name (toJson $value) -}}
{{- end -}}
{{- end -}}
{{- toJson $env -}}
{{- end }}
