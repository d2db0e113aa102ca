{{/* The chart name. */}}
{{- define "s3canary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of every resource. */}}
{{- define "s3canary.fullname" -}}
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

{{- define "s3canary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "s3canary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "s3canary.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "s3canary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "s3canary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "s3canary.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "s3canary.configMapName" -}}
{{- default (printf "%s-config" (include "s3canary.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{- define "s3canary.webSecretName" -}}
{{- default (printf "%s-web-config" (include "s3canary.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{/* Where the web config is mounted (a folder of its own: the config's mount is read-only). */}}
{{- define "s3canary.webConfigFile" -}}
/etc/s3canary-web/web-config.yml
{{- end }}

{{/* s3canary.toml: config.settings with the chart's [server], as TOML. Helm reads numbers as
floats; whole numbers are written as TOML integers (s3canary's integer keys refuse 1024.0). */}}
{{- define "s3canary.toml" -}}
{{- $server := dict "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- if .Values.webConfig.enabled }}
{{- $_ := set $server "web_config_file" (include "s3canary.webConfigFile" .) }}
{{- end }}
{{- $settings := merge (dict "server" $server) (deepCopy .Values.config.settings) }}
{{- regexReplaceAll "(?m)^(\\s*[^=\\n]+ = -?[0-9]+)\\.0$" (toToml $settings) "${1}" }}
{{- end }}

{{/* web-config.yml, exporter-toolkit format, paths relative to it. */}}
{{- define "s3canary.webConfig" -}}
{{- $w := .Values.webConfig }}
{{- if $w.tls.enabled }}
tls_server_config:
  cert_file: tls.crt
  key_file: tls.key
  min_version: {{ $w.tls.minVersion }}
{{- end }}
{{- if $w.basicAuthUsers }}
basic_auth_users:
  {{- toYaml $w.basicAuthUsers | nindent 2 }}
{{- end }}
{{- end }}

{{/* The pod template, the same for the Deployment and the StatefulSet (shards). */}}
{{- define "s3canary.podTemplate" -}}
{{- $web := .Values.webConfig }}
{{- $basicAuth := and $web.enabled (or $web.existingSecret (not (empty $web.basicAuthUsers))) }}
{{- $https := and $web.enabled $web.tls.enabled }}
metadata:
  labels:
    {{- include "s3canary.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if not .Values.config.existingConfigMap }}
    checksum/config: {{ include "s3canary.toml" . | sha256sum }}
    {{- end }}
    {{- if and $web.enabled (not $web.existingSecret) }}
    checksum/web-config: {{ include "s3canary.webConfig" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "s3canary.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: s3canary
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --config
        - /etc/s3canary/{{ .Values.config.key }}
        - --log-format
        - json
        {{- if gt (int .Values.shards) 1 }}
        # $(POD_NAME) is <name>-<ordinal>: the shard index.
        - --shard
        - $(POD_NAME)/{{ int .Values.shards }}
        {{- end }}
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      {{- if or (gt (int .Values.shards) 1) .Values.awsRegion .Values.extraEnv }}
      env:
        {{- if gt (int .Values.shards) 1 }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.awsRegion }}
        - name: AWS_REGION
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      livenessProbe:
        {{- if $basicAuth }}
        tcpSocket:
          port: http
        {{- else }}
        httpGet:
          path: /-/healthy
          port: http
          scheme: {{ ternary "HTTPS" "HTTP" $https }}
        {{- end }}
        periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
        failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
      readinessProbe:
        {{- if $basicAuth }}
        tcpSocket:
          port: http
        {{- else }}
        httpGet:
          path: /-/ready
          port: http
          scheme: {{ ternary "HTTPS" "HTTP" $https }}
        {{- end }}
        periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
        failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/s3canary
          readOnly: true
        {{- if $web.enabled }}
        - name: web-config
          mountPath: /etc/s3canary-web
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "s3canary.configMapName" . }}
    {{- if $web.enabled }}
    - name: web-config
      projected:
        sources:
          - secret:
              name: {{ include "s3canary.webSecretName" . }}
          {{- if and $https (not $web.existingSecret) }}
          - secret:
              name: {{ required "webConfig.tls.secretName is required with webConfig.tls.enabled" $web.tls.secretName }}
              items:
                - key: tls.crt
                  path: tls.crt
                - key: tls.key
                  path: tls.key
          {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
