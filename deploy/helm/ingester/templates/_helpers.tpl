{{/* Names and labels. */}}
{{- define "ingester.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ingester.fullname" -}}
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

{{- define "ingester.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ingester.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingester.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ingester.labels" -}}
helm.sh/chart: {{ include "ingester.chart" . }}
{{ include "ingester.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: collector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ingester.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ingester.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ingester.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The settings the pod will run with, after the chart's own additions (TLS file paths). */}}
{{- define "ingester.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $kafka := default dict $config.kafka }}
{{- $tls := .Values.kafkaAuth.tls }}
{{- if $tls.existingSecret }}
{{- $_ := set $kafka "ssl_cafile" (default "/etc/ingester/tls/ca.pem" $kafka.ssl_cafile) }}
{{- if $tls.certKey }}
{{- $_ := set $kafka "ssl_certfile" (default "/etc/ingester/tls/client.pem" $kafka.ssl_certfile) }}
{{- $_ := set $kafka "ssl_keyfile" (default "/etc/ingester/tls/client.key" $kafka.ssl_keyfile) }}
{{- end }}
{{- end }}
{{- $_ := set $config "kafka" $kafka }}
{{- $collection := default dict $config.collection }}
{{- if not $collection.workers }}
{{- with include "ingester.cpuWorkers" . }}
{{- $_ := set $collection "workers" (atoi .) }}
{{- $_ := set $config "collection" $collection }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
collection.workers when config.collection.workers is null or 0: the pod's CPU limit rounded up (1500m -> 2),
or, without a limit, its CPU request; empty when neither is set (ingester then decides). Each worker process
uses about one core, and its own collection.max_inflight_bytes budget: ingester's own default, one process per
CPU of the node, would start as many processes as the node has cores inside the pod's memory limit.
*/}}
{{- define "ingester.cpuWorkers" -}}
{{- $resources := default dict .Values.resources }}
{{- $cpu := or (default dict $resources.limits).cpu (default dict $resources.requests).cpu }}
{{- if $cpu }}
{{- $text := toString $cpu }}
{{- $cores := ternary (divf (trimSuffix "m" $text) 1000) (float64 $text) (hasSuffix "m" $text) }}
{{- max 1 (int (ceil $cores)) }}
{{- end }}
{{- end }}

{{/*
TOML for one table: its scalar and array keys first, then its sub-tables as [path.name]. Keys whose value is
null are left out. Numbers: Helm reads every YAML number as a float64, so whole numbers are printed as integers
(ingester's integer settings reject 60.0). A list of tables (routes, buckets) is written as an array of inline
tables, `routes = [{ name = "auth", topic = "x" }]`: the same TOML as [[routes]] blocks, on one line.
*/}}
{{- define "ingester.tomlValue" -}}
{{- if kindIs "string" . }}{{ toJson . }}
{{- else if kindIs "bool" . }}{{ ternary "true" "false" . }}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) }}{{ if eq (float64 .) (float64 (int64 .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "int32" .) }}{{ . }}
{{- else if kindIs "slice" . }}[{{ range $i, $item := . }}{{ if $i }}, {{ end }}{{ include "ingester.tomlValue" $item }}{{ end }}]
{{- else if kindIs "map" . }}{ {{- $first := true }}{{ range $k, $v := . }}{{ if not (kindIs "invalid" $v) }}{{ if not $first }},{{ end }} {{ $k }} = {{ include "ingester.tomlValue" $v }}{{ $first = false }}{{ end }}{{ end }} }
{{- else }}{{ fail (printf "config: cannot write %v (%s) as TOML" . (kindOf .)) }}
{{- end }}
{{- end }}

{{- define "ingester.tomlTable" -}}
{{- $path := .path }}
{{- range $key, $value := .table }}
{{- if and (not (kindIs "invalid" $value)) (not (kindIs "map" $value)) }}
{{ $key }} = {{ include "ingester.tomlValue" $value }}
{{- end }}
{{- end }}
{{- range $key, $value := .table }}
{{- if kindIs "map" $value }}
{{- $sub := ternary $key (printf "%s.%s" $path $key) (eq $path "") }}
{{- $hasScalars := false }}
{{- range $k, $v := $value }}{{ if and (not (kindIs "invalid" $v)) (not (kindIs "map" $v)) }}{{ $hasScalars = true }}{{ end }}{{ end }}
{{- if $hasScalars }}

[{{ $sub }}]
{{- end }}
{{- include "ingester.tomlTable" (dict "path" $sub "table" $value) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ingester.toml" -}}
# Rendered by the ingester Helm chart from .Values.config; docs/configuration.md lists every key.
{{- include "ingester.tomlTable" (dict "path" "" "table" (include "ingester.config" . | fromYaml)) }}
{{- end }}

{{/* Refuse values that cannot work, with a message naming the value. */}}
{{- define "ingester.validate" -}}
{{- $config := include "ingester.config" . | fromYaml }}
{{- $kafka := default dict $config.kafka }}
{{- $telemetry := default dict $config.telemetry }}
{{- $scaleout := default dict $config.scaleout }}
{{- if and (gt (int .Values.replicaCount) 1) (not $scaleout.enabled) }}
{{- fail "replicaCount > 1 needs config.scaleout.enabled: every replica would collect every shard" }}
{{- end }}
{{- if lt (int .Values.replicaCount) 1 }}
{{- fail "replicaCount must be at least 1" }}
{{- end }}
{{- if not (int (default 0 $telemetry.metrics_port)) }}
{{- fail "config.telemetry.metrics_port must be set (not 0): the probes, the Service and the ServiceMonitor use it" }}
{{- end }}
{{- $sink := default dict $config.sink }}
{{- if and (ne (default "kafka" $sink.type) "file") (not $kafka.bootstrap_servers) }}
{{- fail "config.kafka.bootstrap_servers is required" }}
{{- end }}
{{- $protocol := default "PLAINTEXT" $kafka.security_protocol }}
{{- $mechanism := default "PLAIN" $kafka.sasl_mechanism }}
{{- if not (has $protocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) }}
{{- fail (printf "config.kafka.security_protocol %q: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL" $protocol) }}
{{- end }}
{{- if and (hasPrefix "SASL" $protocol) (ne $mechanism "OAUTHBEARER") (not .Values.kafkaAuth.sasl.existingSecret) (not $kafka.sasl_username) }}
{{- fail (printf "config.kafka.sasl_mechanism %s needs kafkaAuth.sasl.existingSecret (the username and password)" $mechanism) }}
{{- end }}
{{- if and .Values.kafkaAuth.tls.existingSecret (not (has $protocol (list "SSL" "SASL_SSL"))) }}
{{- fail "kafkaAuth.tls.existingSecret needs config.kafka.security_protocol SSL or SASL_SSL" }}
{{- end }}
{{- if ne (empty .Values.kafkaAuth.tls.certKey) (empty .Values.kafkaAuth.tls.keyKey) }}
{{- fail "kafkaAuth.tls: set both certKey and keyKey (mutual TLS), or neither" }}
{{- end }}
{{- end }}

{{- define "ingester.terminationGracePeriodSeconds" -}}
{{- $collection := default dict .Values.config.collection }}
{{- add (int (default 60 $collection.drain_timeout_seconds)) 15 }}
{{- end }}

{{/* The labels of one alert of the PrometheusRule: its severity and prometheusRule.alertLabels (strings). */}}
{{- define "ingester.alertLabels" -}}
{{- $labels := merge (dict "severity" (required "prometheusRule: every alert needs a severity" .severity)) (default dict .labels) }}
{{- $strings := dict }}
{{- range $key, $value := $labels }}
{{- $_ := set $strings $key (toString $value) }}
{{- end }}
{{- toYaml $strings }}
{{- end }}

{{/*
PromQL: how much the counter `metric{selector,match}` grew in `window`, per series. A labelled counter appears
at its first increment, and increase() needs two samples, so alone it never counts a series' first event (a
single integrity alert would never fire). So a series that did not exist in the window before counts with its
whole value, if its pod was scraped then (`up`; a pod's new process starts its counters from zero): not when
Prometheus itself is new, or did not see the pod for that long, which would count old events again.
*/}}
{{- define "ingester.increase" -}}
{{- $m := printf "%s{%s%s}" .metric .selector (ternary (printf ",%s" .match) "" (not (empty .match))) -}}
(
  {{ $m }} unless present_over_time({{ $m }}[{{ .window }}] offset {{ .window }})
  and on (namespace, pod) present_over_time(up{ {{- .selector -}} }[{{ .window }}] offset {{ .window }})
)
or increase({{ $m }}[{{ .window }}])
{{- end }}
