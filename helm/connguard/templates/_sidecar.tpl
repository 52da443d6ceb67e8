{{/*
The sidecar as named templates, for this chart's example Deployment and for any chart that depends on
this one. In such a chart's pod template (context `.Subcharts.connguard`, values under `connguard:`):

  metadata:
    labels:      {{- include "connguard.podLabels" .Subcharts.connguard | nindent 8 }}
    annotations: {{- include "connguard.podAnnotations" .Subcharts.connguard | nindent 8 }}
  spec:
    terminationGracePeriodSeconds: {{ include "connguard.terminationGracePeriodSeconds" .Subcharts.connguard }}
    initContainers: {{- include "connguard.initContainers" .Subcharts.connguard | nindent 6 }}
    containers:
      - name: app
        ...
      {{- include "connguard.containers" .Subcharts.connguard | nindent 6 }}
    volumes: {{- include "connguard.volumes" .Subcharts.connguard | nindent 6 }}

initContainers holds the sidecar in native mode and containers in legacy mode; the other one renders
nothing, so both lines can stay. "connguard.sidecar" is the container itself, for other layouts.
*/}}

{{- define "connguard.sidecar" -}}
{{- include "connguard.checkKubeVersion" . -}}
{{- $port := include "connguard.adminPort" . | int -}}
{{- $probes := .Values.sidecar.probes -}}
{{- if and $probes.enabled (eq (include "connguard.adminIsLoopback" .) "true") -}}
{{- fail "config.admin.listen is a loopback address, which kubelet probes cannot reach: listen on 0.0.0.0 (the chart then supplies an admin token) or set sidecar.probes.enabled=false" -}}
{{- end -}}
- name: {{ .Values.sidecar.name }}
  image: {{ include "connguard.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  # A native sidecar: starts before, and stops after, the application's containers.
  restartPolicy: Always
  {{- end }}
  {{- with .Values.sidecar.jvmOptions }}
  # The image's own command with these flags after its flags: for a flag given twice the JVM takes the last,
  # so the user's win (JDK_JAVA_OPTIONS would come first and lose). The image's flags are repeated here
  # (connguard.imageJvmFlags); a test holds them equal to the Dockerfile's ENTRYPOINT.
  command:
    - java
    {{- range (include "connguard.imageJvmFlags" $ | splitList "\n") }}
    - {{ . | quote }}
    {{- end }}
    {{- range (splitList " " .) }}
    {{- if . }}
    - {{ . | quote }}
    {{- end }}
    {{- end }}
    - -jar
    - /opt/connguard/connguard.jar
  {{- end }}
  env:
    - name: CONNGUARD_CONFIG
      value: /etc/connguard/connguard.yaml
    {{- if eq (include "connguard.useToken" .) "true" }}
    - name: CONNGUARD_ADMIN_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "connguard.tokenSecretName" . }}
          key: {{ include "connguard.tokenSecretKey" . }}
    {{- end }}
    {{- with ((.Values.fleet | default dict).passwordSecret | default dict) }}
    {{- if and $.Values.fleet.store .name }}
    - name: CONNGUARD_FLEET_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ .name }}
          key: {{ .key | default "password" }}
    {{- end }}
    {{- end }}
    {{- with .Values.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: connguard-admin
      containerPort: {{ $port }}
      protocol: TCP
  {{- if $probes.enabled }}
  # The application starts once every listener is bound (native mode waits for this probe).
  startupProbe:
    httpGet:
      path: /readyz
      port: {{ $port }}
    periodSeconds: {{ $probes.startup.periodSeconds }}
    timeoutSeconds: {{ $probes.startup.timeoutSeconds }}
    failureThreshold: {{ $probes.startup.failureThreshold }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ $port }}
    periodSeconds: {{ $probes.liveness.periodSeconds }}
    timeoutSeconds: {{ $probes.liveness.timeoutSeconds }}
    failureThreshold: {{ $probes.liveness.failureThreshold }}
  {{- if $probes.readiness.enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ $port }}
    periodSeconds: {{ $probes.readiness.periodSeconds }}
    timeoutSeconds: {{ $probes.readiness.timeoutSeconds }}
    failureThreshold: {{ $probes.readiness.failureThreshold }}
  {{- end }}
  {{- end }}
  {{- if and (not .Values.sidecar.native) (gt (int .Values.sidecar.preStopSleepSeconds) 0) }}
  # Legacy mode: all containers get SIGTERM together; keep serving while the application stops.
  lifecycle:
    preStop:
      sleep:
        seconds: {{ .Values.sidecar.preStopSleepSeconds }}
  {{- end }}
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    # The directory, not a subPath mount, so ConfigMap updates reach connguard's live reload.
    - name: connguard-config
      mountPath: /etc/connguard
      readOnly: true
    - name: connguard-tmp
      mountPath: /tmp
    {{- if (.Values.clientTls | default dict).existingSecret }}
    # The directory, not subPath files, so a renewed certificate reaches connguard's file watch.
    - name: connguard-client-tls
      mountPath: {{ .Values.clientTls.mountPath }}
      readOnly: true
    {{- end }}
    {{- if and (.Values.fleet | default dict).store ((.Values.fleet.caSecret | default dict).name) }}
    - name: connguard-fleet-ca
      mountPath: /etc/connguard-fleet-ca
      readOnly: true
    {{- end }}
    {{- with .Values.sidecar.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/*
Chart.yaml admits every Kubernetes version whose API has the fields the legacy mode renders (1.19 and
newer); the two features that need a newer cluster refuse to render on an older one, with the values that
work there, rather than give the API server a pod it rejects or, worse, silently drops fields of.
*/}}
{{- define "connguard.checkKubeVersion" -}}
{{- $version := .Capabilities.KubeVersion.Version -}}
{{- if and .Values.sidecar.native (not (semverCompare ">=1.29.0-0" $version)) -}}
{{- fail (printf "sidecar.native=true needs Kubernetes 1.29 or newer (native sidecar containers), but the cluster is %s: set sidecar.native=false to run connguard as a regular container (before 1.30 also sidecar.preStopSleepSeconds=0, with config.shutdown.minDrainDelay instead)" $version) -}}
{{- end -}}
{{- if and (not .Values.sidecar.native) (gt (int .Values.sidecar.preStopSleepSeconds) 0) (not (semverCompare ">=1.30.0-0" $version)) -}}
{{- fail (printf "sidecar.preStopSleepSeconds needs Kubernetes 1.30 or newer (the preStop sleep action), but the cluster is %s: set sidecar.preStopSleepSeconds=0 and config.shutdown.minDrainDelay to the same delay (connguard then keeps accepting that long after SIGTERM by itself)" $version) -}}
{{- end -}}
{{- end -}}

{{- define "connguard.initContainers" -}}
{{- if .Values.sidecar.native -}}{{ include "connguard.sidecar" . }}{{- end -}}
{{- end -}}

{{- define "connguard.containers" -}}
{{- if not .Values.sidecar.native -}}{{ include "connguard.sidecar" . }}{{- end -}}
{{- end -}}

{{- define "connguard.volumes" -}}
- name: connguard-config
  configMap:
    name: {{ include "connguard.fullname" . }}
- name: connguard-tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.sidecar.tmpSizeLimit }}
{{- with (.Values.clientTls | default dict).existingSecret }}
- name: connguard-client-tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- $fleet := .Values.fleet | default dict -}}
{{- if and $fleet.store (($fleet.caSecret | default dict).name) }}
- name: connguard-fleet-ca
  secret:
    secretName: {{ $fleet.caSecret.name }}
    items:
      - key: {{ $fleet.caSecret.key | default "ca.crt" }}
        path: {{ $fleet.caSecret.key | default "ca.crt" }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selects the pods that carry this sidecar (the PodMonitor uses it). */}}
{{- define "connguard.podLabels" -}}
connguard.io/instance: {{ include "connguard.fullname" . }}
{{- end -}}

{{- define "connguard.podAnnotations" -}}
{{- if .Values.rollOnConfigChange -}}
checksum/connguard-config: {{ include "connguard.config" . | sha256sum }}
{{- end -}}
{{- end -}}

{{/*
The JVM flags of the image's ENTRYPOINT (the Dockerfile), one a line, for the command the sidecar gets when
sidecar.jvmOptions adds flags of its own after them. Keep equal to the Dockerfile (ChartOptionsTest checks).
*/}}
{{- define "connguard.imageJvmFlags" -}}
-XX:MinRAMPercentage=25
-XX:MaxRAMPercentage=25
-XX:MaxMetaspaceSize=32m
-XX:ReservedCodeCacheSize=24m
-XX:+UseSerialGC
-Xmn4m
-XX:TrimNativeHeapInterval=1000
-Dsun.misc.unsafe.memory.access=allow
-XX:+ExitOnOutOfMemoryError
-XX:+PerfDisableSharedMem
--enable-native-access=ALL-UNNAMED
-Djava.io.tmpdir=/tmp
{{- end -}}
