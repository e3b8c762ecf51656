{{/*
Chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "ctfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name. Kept to 45 characters so that suffixes such as
"-redis-headless" and "-controller" still fit in 63.
*/}}
{{- define "ctfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "ctfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "controller").
*/}}
{{- define "ctfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ctfleet.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Every label of one component's resources. Call with (dict "ctx" $ "component" "controller").
*/}}
{{- define "ctfleet.labels" -}}
helm.sh/chart: {{ include "ctfleet.chart" .ctx }}
{{ include "ctfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ctfleet
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of one component's resources: <fullname>-<component>.
*/}}
{{- define "ctfleet.componentName" -}}
{{- printf "%s-%s" (include "ctfleet.fullname" .ctx) .component }}
{{- end }}

{{/*
ServiceAccount of a component (controller, worker, api).
*/}}
{{- define "ctfleet.serviceAccountName" -}}
{{- $sa := (index .ctx.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (include "ctfleet.componentName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/*
The ctfleet image reference.
*/}}
{{- define "ctfleet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Name of the lease the controllers elect a leader on (CTFLEET_LEASE_NAME).
*/}}
{{- define "ctfleet.leaseName" -}}
{{- printf "%s-leader" (include "ctfleet.fullname" .) }}
{{- end }}

{{/*
Namespace the platform API creates ChallengeInstances in.
*/}}
{{- define "ctfleet.apiNamespace" -}}
{{- default .Release.Namespace .Values.api.namespace }}
{{- end }}

{{/*
Secret holding the API tokens (key "tokens").
*/}}
{{- define "ctfleet.apiTokensSecretName" -}}
{{- default (printf "%s-api-tokens" (include "ctfleet.fullname" .)) .Values.api.tokens.existingSecret }}
{{- end }}

{{/*
Secret holding the deployment key of per-team flags (key "key"): flags.existingSecret,
or the one the chart generates (templates/flag-key-secret.yaml).
*/}}
{{- define "ctfleet.flagKeySecretName" -}}
{{- default (printf "%s-flag-key" (include "ctfleet.fullname" .)) .Values.flags.existingSecret }}
{{- end }}

{{/*
Redis: name of the bundled Redis Service, the Secret and key holding the password
(empty when there is none), and the URL with the password as $(REDIS_PASSWORD),
which Kubernetes expands from the env var of that name defined before REDIS_URL.
*/}}
{{- define "ctfleet.redis.serviceName" -}}
{{- printf "%s-redis" (include "ctfleet.fullname" .) }}
{{- end }}

{{- define "ctfleet.redis.passwordSecret" -}}
{{- if eq .Values.redis.mode "bundled" }}
{{- .Values.redis.bundled.existingSecret | default (printf "%s-redis" (include "ctfleet.fullname" .)) }}
{{- else }}
{{- .Values.redis.external.existingSecret }}
{{- end }}
{{- end }}

{{- define "ctfleet.redis.passwordKey" -}}
{{- if eq .Values.redis.mode "bundled" }}redis-password{{ else }}{{ .Values.redis.external.passwordKey }}{{ end }}
{{- end }}

{{- define "ctfleet.redis.url" -}}
{{- if eq .Values.redis.mode "bundled" }}
{{- printf "redis://:$(REDIS_PASSWORD)@%s.%s.svc:6379/0" (include "ctfleet.redis.serviceName" .) .Release.Namespace }}
{{- else }}
{{- $url := required "redis.external.url is required when redis.mode is external (e.g. redis://redis.example:6379/0)" .Values.redis.external.url }}
{{- if not (regexMatch "^rediss?://[^\\s]+$" $url) }}
{{- fail (printf "redis.external.url must be a redis:// or rediss:// URL, got %q" $url) }}
{{- end }}
{{- if .Values.redis.external.existingSecret }}
{{- $parts := splitn "://" 2 $url }}
{{- if contains "@" $parts._1 }}
{{- fail "redis.external.url must not carry credentials when redis.external.existingSecret is set: the password comes from the Secret (user name: redis.external.username)" }}
{{- end }}
{{- printf "%s://%s:$(REDIS_PASSWORD)@%s" $parts._0 .Values.redis.external.username $parts._1 }}
{{- else }}
{{- $url }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment shared by every ctfleet process: Redis, namespaces, logging, jobs.
*/}}
{{- define "ctfleet.commonEnv" -}}
{{- $secret := include "ctfleet.redis.passwordSecret" . }}
{{- if $secret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "ctfleet.redis.passwordKey" . }}
{{- end }}
- name: REDIS_URL
  value: {{ include "ctfleet.redis.url" . | quote }}
- name: CTFLEET_REDIS_PREFIX
  value: {{ .Values.redis.prefix | quote }}
- name: CTFLEET_NAMESPACES
  value: {{ join "," .Values.watchNamespaces | quote }}
- name: CTFLEET_FLAG_KEY_SECRET
  value: {{ printf "%s/%s" .Release.Namespace (include "ctfleet.flagKeySecretName" .) | quote }}
- name: CTFLEET_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: CTFLEET_JOB_ATTEMPTS
  value: {{ .Values.jobs.attempts | int64 | quote }}
- name: CTFLEET_JOB_BACKOFF_MS
  value: {{ .Values.jobs.backoffMs | int64 | quote }}
- name: CTFLEET_SHUTDOWN_TIMEOUT_SECONDS
  value: {{ .Values.shutdownTimeoutSeconds | int64 | quote }}
- name: CTFLEET_HTTP_HOST
  value: "0.0.0.0"
{{- with .Values.nodeOptions }}
- name: NODE_OPTIONS
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Probes of every ctfleet process, on the named port "http".
*/}}
{{- define "ctfleet.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/*
Checks of combinations the schema cannot express; each failure names the values.
*/}}
{{- define "ctfleet.validate" -}}
{{- if and (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection) }}
{{- fail "controller.leaderElection must be true when controller.replicas > 1: otherwise every controller pod reconciles at once" }}
{{- end }}
{{- if and .Values.api.enabled .Values.watchNamespaces (not (has (include "ctfleet.apiNamespace" .) .Values.watchNamespaces)) }}
{{- fail (printf "api.namespace (%s) must be one of watchNamespaces %v: instances the API creates there would never be started" (include "ctfleet.apiNamespace" .) .Values.watchNamespaces) }}
{{- end }}
{{- if eq .Values.redis.mode "external" }}
{{- $_ := include "ctfleet.redis.url" . }}
{{- end }}
{{- if and (eq .Values.worker.network.noneNetwork "engine-default") (not .Values.worker.network.firewall) }}
{{- fail "worker.network.noneNetwork engine-default needs worker.network.firewall true: without the workers' rules, None instances on Docker's default bridge reach each other, the node and the Internet" }}
{{- end }}
{{- $range := splitList "-" .Values.worker.portRange }}
{{- if or (lt (int (index $range 0)) 1) (gt (int (index $range 1)) 65535) (gt (int (index $range 0)) (int (index $range 1))) }}
{{- fail (printf "worker.portRange must be MIN-MAX with 1 <= MIN <= MAX <= 65535, got %q" .Values.worker.portRange) }}
{{- end }}
{{- $dangerous := list "NET_RAW" "NET_ADMIN" "SYS_ADMIN" "SYS_MODULE" "SYS_PTRACE" "SYS_RAWIO" "SYS_BOOT" "MAC_ADMIN" "MAC_OVERRIDE" "BPF" "PERFMON" "DAC_READ_SEARCH" "MKNOD" }}
{{- $refused := list }}
{{- range .Values.worker.hardening.allowedExtraCapabilities }}
{{- if has . $dangerous }}{{ $refused = append $refused . }}{{ end }}
{{- end }}
{{- if and $refused (not .Values.worker.hardening.unsafeAllowDangerousCapabilities) }}
{{- fail (printf "worker.hardening.allowedExtraCapabilities: %s would let a team break out of its instance's isolation (docs/security.md); refused unless worker.hardening.unsafeAllowDangerousCapabilities is true" (join ", " $refused)) }}
{{- end }}
{{- $kept := list }}
{{- range .Values.worker.hardening.capabilities }}
{{- if has . $dangerous }}{{ $kept = append $kept . }}{{ end }}
{{- end }}
{{- if and $kept (not .Values.worker.hardening.unsafeAllowDangerousCapabilities) }}
{{- fail (printf "worker.hardening.capabilities: %s would let every team break out of its instance's isolation (docs/security.md); refused unless worker.hardening.unsafeAllowDangerousCapabilities is true" (join ", " $kept)) }}
{{- end }}
{{- end }}

{{/*
RBAC rules on ChallengeInstances and Challenges of the controller and the worker (see rbac-*.yaml).
*/}}
{{- define "ctfleet.controllerRules" -}}
- apiGroups: [ctfleet.io]
  resources: [challengeinstances]
  verbs: [list, watch, patch, delete]
# patch on challenges: the finalizer ctfleet.io/instances (docs/challenges.md).
- apiGroups: [ctfleet.io]
  resources: [challenges]
  verbs: [list, watch, patch]
- apiGroups: [ctfleet.io]
  resources: [challengeinstances/status, challenges/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{- define "ctfleet.workerRules" -}}
- apiGroups: [ctfleet.io]
  resources: [challengeinstances]
  verbs: [get, list]
- apiGroups: [ctfleet.io]
  resources: [challenges]
  verbs: [get, list, watch]
- apiGroups: [ctfleet.io]
  resources: [challengeinstances/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Flags (docs/flags.md): an instance's own flag Secret (get, create) and an organiser's
# static flag Secret (get). Neither name is known in advance, so no resourceNames; no
# list, watch, update or delete.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
{{- end }}
