{{/*
Names, labels, the rendered configuration and the termination budget. Every helper takes the chart's
root context: this chart's own `.`, or `.Subcharts.connguard` in a chart that depends on this one.
*/}}

{{- define "connguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-connguard", or the release name when it already says connguard. */}}
{{- define "connguard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "connguard.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "connguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: connguard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "connguard.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* host and port of admin.listen ("[::1]:9633" for IPv6). */}}
{{- define "connguard.adminHost" -}}
{{- $listen := .Values.config.admin.listen -}}
{{- if hasPrefix "[" $listen -}}
{{- regexReplaceAll "^\\[(.*)\\]:[0-9]+$" $listen "${1}" -}}
{{- else -}}
{{- regexReplaceAll ":[0-9]+$" $listen "" -}}
{{- end -}}
{{- end -}}

{{- define "connguard.adminPort" -}}
{{- regexFind "[0-9]+$" .Values.config.admin.listen -}}
{{- end -}}

{{- define "connguard.adminIsLoopback" -}}
{{- $host := include "connguard.adminHost" . -}}
{{- or (eq $host "localhost") (eq $host "::1") (hasPrefix "127." $host) -}}
{{- end -}}

{{/* connguard requires a token when admin.listen is not loopback; an existing Secret is always used. */}}
{{- define "connguard.useToken" -}}
{{- or (ne (include "connguard.adminIsLoopback" .) "true") (ne .Values.adminToken.existingSecret "") -}}
{{- end -}}

{{- define "connguard.tokenSecretName" -}}
{{- default (printf "%s-admin-token" (include "connguard.fullname" .)) .Values.adminToken.existingSecret -}}
{{- end -}}

{{- define "connguard.tokenSecretKey" -}}
{{- if .Values.adminToken.existingSecret -}}{{ .Values.adminToken.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{/* The configuration file: config as given, plus admin.token as a reference to the environment. */}}
{{- define "connguard.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if eq (include "connguard.useToken" .) "true" -}}
{{- $_ := set $config.admin "token" "${CONNGUARD_ADMIN_TOKEN}" -}}
{{- end -}}
{{- $tls := .Values.clientTls | default dict -}}
{{- if $tls.existingSecret -}}
{{- /* Listeners that offer TLS and name no files get the mounted Secret's. */ -}}
{{- range $config.listeners -}}
{{- $clientTls := .clientTls | default dict -}}
{{- if and (has (lower (toString (default "disable" $clientTls.mode))) (list "allow" "require")) (not $clientTls.certFile) -}}
{{- $_ := set $clientTls "certFile" (printf "%s/%s" (trimSuffix "/" $tls.mountPath) $tls.certKey) -}}
{{- $_ := set $clientTls "keyFile" (printf "%s/%s" (trimSuffix "/" $tls.mountPath) $tls.keyKey) -}}
{{- $_ := set . "clientTls" $clientTls -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $fleet := .Values.fleet | default dict -}}
{{- if $fleet.store -}}
{{- $f := dict "store" $fleet.store "name" (default (include "connguard.fullname" .) $fleet.name) "leaseTtl" (default "15s" $fleet.leaseTtl) -}}
{{- if (($fleet.passwordSecret | default dict).name) -}}
{{- $_ := set $f "password" "${CONNGUARD_FLEET_PASSWORD}" -}}
{{- end -}}
{{- with ($fleet.caSecret | default dict) -}}
{{- if .name -}}
{{- $_ := set $f "caFile" (printf "/etc/connguard-fleet-ca/%s" (.key | default "ca.crt")) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "fleet" $f -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* A duration as connguard writes it (250ms, 5s, 10m, 1h, 2d, 0) in whole seconds, rounded up. */}}
{{- define "connguard.seconds" -}}
{{- $text := toString . | trim -}}
{{- $n := regexFind "^[0-9]+" $text | default "0" | int64 -}}
{{- $unit := regexFind "(ms|s|m|h|d)$" $text -}}
{{- if eq $unit "ms" -}}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "m" -}}{{ mul $n 60 }}
{{- else if eq $unit "h" -}}{{ mul $n 3600 }}
{{- else if eq $unit "d" -}}{{ mul $n 86400 }}
{{- else -}}{{ $n }}
{{- end -}}
{{- end -}}

{{/* What connguard may use of the grace period: minDrainDelay + drainTimeout (+ the preStop sleep). */}}
{{- define "connguard.shutdownSeconds" -}}
{{- $shutdown := .Values.config.shutdown | default dict -}}
{{- $delay := include "connguard.seconds" (default "0s" $shutdown.minDrainDelay) | int64 -}}
{{- $drain := include "connguard.seconds" (default "25s" $shutdown.drainTimeout) | int64 -}}
{{- $preStop := 0 -}}
{{- if not .Values.sidecar.native -}}{{- $preStop = .Values.sidecar.preStopSleepSeconds | int64 -}}{{- end -}}
{{- add $delay $drain $preStop -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: computed, or the given value when it leaves connguard its drain. */}}
{{- define "connguard.terminationGracePeriodSeconds" -}}
{{- $needed := include "connguard.shutdownSeconds" . | int64 -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $needed .Values.terminationGraceExtraSeconds -}}
{{- else -}}
{{- $given := .Values.terminationGracePeriodSeconds | int64 -}}
{{- if le $given $needed -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be larger than connguard's shutdown, minDrainDelay + drainTimeout%s = %ds" $given (ternary "" " + preStopSleepSeconds" .Values.sidecar.native) $needed) -}}
{{- end -}}
{{- $given -}}
{{- end -}}
{{- end -}}

{{/* What the schema cannot say: listener names and listen addresses are unique (connguard refuses duplicates). */}}
{{- define "connguard.validate" -}}
{{- $fleet := .Values.fleet | default dict -}}
{{- if and (($fleet.caSecret | default dict).name) (not (hasPrefix "rediss://" (toString $fleet.store))) -}}
{{- fail "fleet.caSecret needs a TLS store: set fleet.store to rediss://host:port/db, or remove fleet.caSecret.name" -}}
{{- end -}}
{{- if not $fleet.store -}}
{{- $clients := .Values.config.clients | default dict -}}
{{- if gt (int ((($clients.defaults | default dict).fleetMaxConnections) | default 0)) 0 -}}
{{- fail "config.clients.defaults.fleetMaxConnections needs fleet.store (the Redis that the pods share): set fleet.store or remove fleetMaxConnections" -}}
{{- end -}}
{{- range $i, $rule := ($clients.rules | default list) -}}
{{- if gt (int ($rule.fleetMaxConnections | default 0)) 0 -}}
{{- fail (printf "config.clients.rules[%d].fleetMaxConnections needs fleet.store (the Redis that the pods share): set fleet.store or remove fleetMaxConnections" $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $names := dict -}}
{{- $addresses := dict -}}
{{- range .Values.config.listeners -}}
{{- if hasKey $names .name -}}{{- fail (printf "config.listeners: duplicate listener name %q" .name) -}}{{- end -}}
{{- if hasKey $addresses .listen -}}{{- fail (printf "config.listeners: duplicate listen address %q" .listen) -}}{{- end -}}
{{- $_ := set $names .name true -}}
{{- $_ = set $addresses .listen true -}}
{{- end -}}
{{- end -}}
