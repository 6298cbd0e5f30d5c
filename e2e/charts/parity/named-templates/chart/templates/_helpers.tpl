{{- define "nt.fullname" -}}
{{- printf "%s-%s" .Release.Name "app" | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "nt.labels" -}}
app.kubernetes.io/name: {{ include "nt.fullname" . }}
{{ toYaml .Values.labels }}
{{- end -}}
