{{- define "lookup-password.password" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (printf "%s-auth" .Release.Name) -}}
{{- if .Values.auth.password -}}
{{- .Values.auth.password | b64enc -}}
{{- else if and $secret $secret.data (index $secret.data "password") -}}
{{- index $secret.data "password" -}}
{{- else -}}
{{- randAlphaNum 16 | b64enc -}}
{{- end -}}
{{- end -}}
