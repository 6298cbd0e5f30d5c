{{/* Chart name. */}}
{{- define "launch-darkly.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of the release's object names: the release name unless overridden. */}}
{{- define "launch-darkly.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels. */}}
{{- define "launch-darkly.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "launch-darkly.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The project, which must be set. */}}
{{- define "launch-darkly.project" -}}
{{- required "project is required: the flag project the environment's services read" .Values.project | toString }}
{{- end }}

{{/* The Secret's key: LD_SDK_KEY_<PROJECT>. */}}
{{- define "launch-darkly.keyName" -}}
{{- printf "LD_SDK_KEY_%s" (regexReplaceAll "[^A-Z0-9]" (include "launch-darkly.project" . | upper) "_") }}
{{- end }}

{{/* The fake SDK key, sdk-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx. */}}
{{- define "launch-darkly.sdkKey" -}}
{{- $h := printf "%s/%s/%s" .Release.Namespace (include "launch-darkly.project" .) .Values.keySalt | sha256sum -}}
{{- printf "sdk-%s-%s-%s-%s-%s" (substr 0 8 $h) (substr 8 12 $h) (substr 12 16 $h) (substr 16 20 $h) (substr 20 32 $h) }}
{{- end }}
