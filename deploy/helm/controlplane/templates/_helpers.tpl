{{/* Names and labels. */}}
{{- define "controlplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "controlplane.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "controlplane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: call with (dict "root" $ "component" "web"). */}}
{{- define "controlplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "controlplane.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "controlplane.componentLabels" -}}
{{ include "controlplane.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "controlplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The values that must be set: fail with every missing one named. */}}
{{- define "controlplane.validate" -}}
{{- $missing := list }}
{{- if not .Values.publicUrl }}{{ $missing = append $missing "publicUrl" }}{{ end }}
{{- if not .Values.secrets.existingSecret }}
{{- range $key := list "secretKey" "databaseUrl" "redisUrl" }}
{{- if not (index $.Values.secrets $key) }}{{ $missing = append $missing (printf "secrets.%s (or secrets.existingSecret)" $key) }}{{ end }}
{{- end }}
{{- end }}
{{- $own := dict "PUBLIC_URL" "publicUrl" "ALLOWED_HOSTS" "allowedHosts" "TRUSTED_PROXIES" "proxy.trustedProxies" "TRUST_X_FORWARDED_PROTO" "proxy.trustForwardedProto" "METRICS_ALLOWED_ADDRESSES" "metrics.allowedAddresses" "METRICS_PORT" "metrics.port" "WEB_CONCURRENCY" "web.concurrency" "WORKER_CONCURRENCY" "worker.concurrency" "SECRET_KEY" "secrets.secretKey" "DATABASE_URL" "secrets.databaseUrl" "REDIS_URL" "secrets.redisUrl" }}
{{- range $name, $value := $own }}
{{- if hasKey $.Values.config $name }}
{{- fail (printf "config.%s is set by the chart: use %s" $name $value) }}
{{- end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "these values must be set: %s" (join ", " $missing)) }}
{{- else if not (regexMatch "^https?://[^/]+" .Values.publicUrl) }}
{{- fail (printf "publicUrl must be an http:// or https:// address, not %q" .Values.publicUrl) }}
{{- end }}
{{- end }}

{{/* The host of publicUrl. */}}
{{- define "controlplane.publicHost" -}}
{{- (urlParse .Values.publicUrl).hostname }}
{{- end }}

{{/* The settings that are not secret, NAME: value (the ConfigMap's data). */}}
{{- define "controlplane.configData" -}}
{{- $hosts := .Values.allowedHosts | default (list (include "controlplane.publicHost" .)) -}}
PUBLIC_URL: {{ .Values.publicUrl | trimSuffix "/" | quote }}
ALLOWED_HOSTS: {{ join "," $hosts | quote }}
TRUSTED_PROXIES: {{ join "," .Values.proxy.trustedProxies | quote }}
TRUST_X_FORWARDED_PROTO: {{ .Values.proxy.trustForwardedProto | toString | quote }}
METRICS_ALLOWED_ADDRESSES: {{ join "," .Values.metrics.allowedAddresses | quote }}
{{- range $name, $value := .Values.config }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The secret settings, NAME: value (the Secret's stringData). */}}
{{- define "controlplane.secretData" -}}
SECRET_KEY: {{ .Values.secrets.secretKey | quote }}
DATABASE_URL: {{ .Values.secrets.databaseUrl | quote }}
REDIS_URL: {{ .Values.secrets.redisUrl | quote }}
{{- range $name, $value := .Values.secrets.extra }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "controlplane.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "controlplane.fullname" .) }}
{{- end }}

{{/* Pod template annotations: a change of configuration or chart-made secret rolls the pods. */}}
{{- define "controlplane.checksums" -}}
checksum/config: {{ include "controlplane.configData" . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include "controlplane.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* Pod-level settings every pod shares. */}}
{{- define "controlplane.podSpec" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* Container settings every container shares: image, configuration, hardening, a writable /tmp. */}}
{{- define "controlplane.container" -}}
image: {{ include "controlplane.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
envFrom:
  - configMapRef:
      name: {{ include "controlplane.fullname" . }}
  - secretRef:
      name: {{ include "controlplane.secretName" . }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* A worker's or beat's /metrics port (METRICS_PORT), when metrics.port is set. */}}
{{- define "controlplane.metricsAnnotations" -}}
{{- if and .Values.metrics.scrapeAnnotations (gt (int .Values.metrics.port) 0) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{- define "controlplane.metricsPort" -}}
{{- if gt (int .Values.metrics.port) 0 }}
ports:
  - name: metrics
    containerPort: {{ int .Values.metrics.port }}
    protocol: TCP
{{- end }}
{{- end }}

{{- define "controlplane.tmpVolume" -}}
volumes:
  - name: tmp
    emptyDir: {}
{{- end }}

{{- define "controlplane.scheduling" -}}
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
