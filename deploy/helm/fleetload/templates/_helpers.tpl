{{/* The image, its tag defaulting to the chart's appVersion. */}}
{{- define "fleetload.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Labels of a component's pods. */}}
{{- define "fleetload.labels" -}}
app.kubernetes.io/name: fleetload
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Where workers dial the coordinator. */}}
{{- define "fleetload.coordinatorUrl" -}}
{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}://{{ .Release.Name }}-coordinator:7400
{{- end }}

{{/* Environment both pods take from the Secret. */}}
{{- define "fleetload.secretEnv" -}}
- name: FLEETLOAD_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secretName }}
      key: FLEETLOAD_TOKEN
- name: FLEETLOAD_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secretName }}
      key: FLEETLOAD_DB_PASSWORD
{{- end }}

{{/* Mounts both pods have: plan and files, the RDS CA, TLS, the report volume. */}}
{{- define "fleetload.mounts" -}}
- name: plan
  mountPath: /etc/fleetload
  readOnly: true
{{- if .Values.rdsCa.configMap }}
- name: rds-ca
  mountPath: {{ .Values.rdsCa.mountPath }}
  readOnly: true
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/fleetload-tls
  readOnly: true
{{- end }}
- name: report
  mountPath: /report
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "fleetload.volumes" -}}
- name: plan
  configMap:
    name: {{ .Release.Name }}-plan
{{- if .Values.rdsCa.configMap }}
- name: rds-ca
  configMap:
    name: {{ .Values.rdsCa.configMap }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
{{- end }}
- name: report
  persistentVolumeClaim:
    claimName: {{ .Release.Name }}-report
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Scheduling of one component: nodeSelector, tolerations, affinity. */}}
{{- define "fleetload.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
