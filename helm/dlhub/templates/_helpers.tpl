{{- /*
Helpers shared by every component: names, labels, the rendered platform config, the ports
and URLs the components use to find each other, generated secrets and security contexts.
*/}}

{{- /* The release's base name: <release>-dlhub, or the release name when it holds "dlhub". */}}
{{- define "dlhub.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
KubeSpawner's safe slug of a name, as hub_config.naming.dns_label makes it; call with
(list NAME MAXLENGTH). A DNS label of at most MAXLENGTH characters (lowercase letters,
digits and '-', starting with a letter, ending with a letter or digit, no "--") stays as
it is; any other name becomes its lowercase letters and digits (runs of other characters
written '-', cut to MAXLENGTH - 11, "x-" in front when it would not start with a letter,
"x" when empty), then "---" and 8 hex digits of the SHA-256 of the whole name. Python
lowercases U+0130 to "i" and U+0307 where Go gives "i": written out first, both agree.
tests/chart/test_claim_names.py compares the two.
*/}}
{{- define "dlhub.safeSlug" -}}
{{- $name := index . 0 | toString }}
{{- $max := max (index . 1 | int) 12 | int }}
{{- if and (regexMatch "^[a-z]([a-z0-9-]*[a-z0-9])?$" $name) (le (len $name) (min $max 63 | int)) (not (contains "--" $name)) }}
{{- $name }}
{{- else }}
{{- $keep := sub $max 11 | int }}
{{- $safe := $name | replace "\u0130" "i\u0307" | lower }}
{{- $safe = regexReplaceAll "[^a-z0-9]+" $safe "-" }}
{{- $safe = trunc $keep (regexReplaceAll "^-+" $safe "") }}
{{- $safe = regexReplaceAll "-+$" $safe "" }}
{{- if and $safe (not (regexMatch "^[a-z]" $safe)) }}
{{- $safe = printf "x-%s" (trunc (max (sub $keep 2) 0 | int) $safe) }}
{{- end }}
{{- printf "%s---%s" ($safe | default "x") (sha256sum $name | trunc 8) }}
{{- end }}
{{- end }}

{{- /*
The claim of a group volume: <fullname>-group-<slug of the group>, at most 63 characters;
call with (list $ GROUP). hub_config.k8s_objects.group_claim makes the same name.
*/}}
{{- define "dlhub.groupClaim" -}}
{{- $prefix := printf "%s-group-" (include "dlhub.fullname" (index . 0)) }}
{{- $prefix }}{{ include "dlhub.safeSlug" (list (index . 1) (sub 63 (len $prefix))) }}
{{- end }}

{{- define "dlhub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /* Names of the objects other components refer to. */}}
{{- define "dlhub.hub.name" -}}{{ include "dlhub.fullname" . }}-hub{{- end }}
{{- define "dlhub.proxy.name" -}}{{ include "dlhub.fullname" . }}-proxy{{- end }}
{{- define "dlhub.proxyPublic.name" -}}{{ include "dlhub.fullname" . }}-proxy-public{{- end }}
{{- define "dlhub.proxyApi.name" -}}{{ include "dlhub.fullname" . }}-proxy-api{{- end }}
{{- define "dlhub.scheduler.name" -}}{{ include "dlhub.fullname" . }}-gpu-scheduler{{- end }}
{{- define "dlhub.secret.name" -}}{{ include "dlhub.fullname" . }}-secrets{{- end }}
{{- define "dlhub.platform.name" -}}{{ include "dlhub.fullname" . }}-platform{{- end }}

{{- /* Labels of every object; call with (dict "root" $ "component" "hub"). */}}
{{- define "dlhub.labels" -}}
{{ include "dlhub.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: dlhub
{{- end }}

{{- /* The labels a component's pods are selected by; same argument as dlhub.labels. */}}
{{- define "dlhub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dlhub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /*
The platform config as the hub and the GPU scheduler read it: values.platform with
`backend: kubernetes` (the only backend this chart runs). The datasets and shared volumes
are mounted from the chart's claims, which exist only with sharedStorage.enabled: without
it they default to off (a server would otherwise wait for a claim that never comes), unless
the platform config names their `source` claim or enables them itself. A volume that would
be mounted from a claim the chart does not make stops the install with a message.
*/}}
{{- define "dlhub.platform" -}}
{{- $fullname := include "dlhub.fullname" . }}
{{- if or (hasPrefix "jupyter-" $fullname) (hasPrefix "home-" $fullname) }}
{{- fail (printf "the release's name %s starts like the names of users' pods and homes (jupyter-, home-); install it under another name" $fullname) }}
{{- end }}
{{- $platform := deepCopy (.Values.platform | default dict) }}
{{- $_ := set $platform "backend" "kubernetes" }}
{{- $storage := .Values.sharedStorage }}
{{- $volumes := get $platform "volumes" | default dict }}
{{- range $name := list "datasets" "shared" }}
{{- $volume := get $volumes $name | default dict }}
{{- if and (not $storage.enabled) (not (get $volume "source")) }}
{{- if not (hasKey $volume "enabled") }}
{{- $_ := set $volume "enabled" false }}
{{- $_ := set $volumes $name $volume }}
{{- else if $volume.enabled }}
{{- fail (printf "platform.volumes.%s is enabled but its claim %s-%s is made only with sharedStorage.enabled: enable sharedStorage or set platform.volumes.%s.source to an existing claim" $name (include "dlhub.fullname" $) $name $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $claims := list }}
{{- if $storage.enabled }}
{{- range $storage.volumes }}{{ $claims = append $claims (toString .name) }}{{ end }}
{{- end }}
{{- range (get $volumes "groups" | default list) }}
{{- if and (not .source) (not (has (toString .group) $claims)) }}
{{- fail (printf "platform.volumes.groups: the volume of group %s needs the claim %s: add {name: %s} to sharedStorage.volumes (with sharedStorage.enabled) or set its source to an existing claim" .group (include "dlhub.groupClaim" (list $ .group)) .group) }}
{{- end }}
{{- end }}
{{- if $volumes }}
{{- $_ := set $platform "volumes" $volumes }}
{{- end }}
{{- with .Values.hub.ldapBindPassword.secretName }}
{{- $auth := get $platform "auth" | default dict }}
{{- $ldap := get $auth "ldap" | default dict }}
{{- if get $ldap "lookup_dn_search_password" }}
{{- fail "platform.auth.ldap.lookup_dn_search_password and hub.ldapBindPassword.secretName are both set: keep the password in the Secret only" }}
{{- end }}
{{- $_ := set $ldap "lookup_dn_search_password_file" (include "dlhub.ldapBindPasswordFile" $) }}
{{- $_ := set $auth "ldap" $ldap }}
{{- $_ := set $platform "auth" $auth }}
{{- end }}
{{- with .Values.hub.oidcClientSecret.secretName }}
{{- $auth := get $platform "auth" | default dict }}
{{- $oidc := get $auth "oidc" | default dict }}
{{- if or (get $oidc "client_secret") (get $oidc "client_secret_file") }}
{{- fail "platform.auth.oidc.client_secret(_file) and hub.oidcClientSecret.secretName are both set: keep the client secret in the Secret only" }}
{{- end }}
{{- $_ := set $oidc "client_secret_file" (include "dlhub.oidcClientSecretFile" $) }}
{{- $_ := set $auth "oidc" $oidc }}
{{- $_ := set $platform "auth" $auth }}
{{- end }}
{{- toYaml $platform }}
{{- end }}

{{- /* Where the hub reads the LDAP lookup account's password (hub.ldapBindPassword). */}}
{{- define "dlhub.ldapBindPasswordFile" -}}
/etc/dlhub/ldap/bind-password
{{- end }}

{{- /* Where the hub reads the OpenID Connect client's secret (hub.oidcClientSecret). */}}
{{- define "dlhub.oidcClientSecretFile" -}}
/etc/dlhub/oidc/client-secret
{{- end }}

{{- /* A setting of the platform config with its schema default: (list $ "hub" "hub_port" 8081). */}}
{{- define "dlhub.setting" -}}
{{- $root := index . 0 }}
{{- $section := index ($root.Values.platform | default dict) (index . 1) | default dict }}
{{- $value := get $section (index . 2) }}
{{- if or (not (hasKey $section (index . 2))) (kindIs "invalid" $value) }}
{{- index . 3 }}
{{- else }}
{{- $value }}
{{- end }}
{{- end }}

{{- define "dlhub.hub.port" -}}{{ include "dlhub.setting" (list . "hub" "hub_port" 8081) }}{{- end }}
{{- define "dlhub.proxy.apiPort" -}}{{ include "dlhub.setting" (list . "hub" "proxy_api_port" 8001) }}{{- end }}
{{- define "dlhub.scheduler.port" -}}{{ include "dlhub.setting" (list . "gpus" "port" 8095) }}{{- end }}
{{- define "dlhub.gpus.enabled" -}}{{ include "dlhub.setting" (list . "gpus" "enabled" false) }}{{- end }}
{{- define "dlhub.hub.dbUrl" -}}{{ include "dlhub.setting" (list . "hub" "db_url" "") }}{{- end }}
{{- define "dlhub.scheduler.dbUrl" -}}{{ include "dlhub.setting" (list . "gpus" "db_url" "") }}{{- end }}

{{- /* The path users see the hub under ("" or "/prefix"), from platform.hub.bind_url. */}}
{{- define "dlhub.basePath" -}}
{{- $url := include "dlhub.setting" (list . "hub" "bind_url" "http://127.0.0.1:8000") }}
{{- (urlParse $url).path | trimSuffix "/" }}
{{- end }}

{{- /*
The URL of one of the release's Services, for a container's `env` values and `args`:
http://$(<NAME>_SERVICE_HOST):$(<NAME>_SERVICE_PORT), where <NAME> is the Service's name
upper-cased with '-' written as '_'. The kubelet gives every pod those variables for the
Services of its namespace that existed when the pod was made (Helm creates Services before
Deployments), and expands $(...) in `env` and `args` from them; so the components find each
other by ClusterIP, with or without cluster DNS (as zero-to-jupyterhub does).
*/}}
{{- define "dlhub.serviceUrl" -}}
{{- $var := . | upper | replace "-" "_" -}}
http://$({{ $var }}_SERVICE_HOST):$({{ $var }}_SERVICE_PORT)
{{- end }}

{{- define "dlhub.hub.url" -}}{{ include "dlhub.serviceUrl" (include "dlhub.hub.name" .) }}{{- end }}
{{- define "dlhub.proxy.apiUrl" -}}{{ include "dlhub.serviceUrl" (include "dlhub.proxyApi.name" .) }}{{- end }}
{{- define "dlhub.scheduler.url" -}}{{ include "dlhub.serviceUrl" (include "dlhub.scheduler.name" .) }}{{- end }}

{{- /*
The TCP port of a database URL (postgresql://user:pw@host:5433/db -> 5433), 5432 when it
names none, "" for SQLite.
*/}}
{{- define "dlhub.dbPort" -}}
{{- if hasPrefix "postgresql" . }}
{{- $host := (urlParse .).host }}
{{- $port := regexFind ":[0-9]+$" $host | trimPrefix ":" }}
{{- $port | default "5432" }}
{{- end }}
{{- end }}

{{- /*
A generated secret, kept across upgrades: the value already in the release's Secret when
there is one (helm install/upgrade against a cluster), else a new random one.
Call with (list $ "key" "generator") where generator is "hex32" (32 random bytes as hex)
or "alnum64" (64 letters and digits).
*/}}
{{- define "dlhub.secret.value" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "dlhub.secret.name" $root) | default dict }}
{{- $data := get $existing "data" | default dict }}
{{- if hasKey $data $key }}
{{- index $data $key | b64dec }}
{{- else if eq (index . 2) "hex32" }}
{{- randAlphaNum 64 | sha256sum }}
{{- else }}
{{- randAlphaNum 64 }}
{{- end }}
{{- end }}

{{- /* An environment variable from the release's generated Secret: (list $ "ENV" "key"). */}}
{{- define "dlhub.secretEnv" -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "dlhub.secret.name" (index . 0) }}
      key: {{ index . 2 }}
{{- end }}

{{- /* Pod-level security: every dlhub pod runs as uid/gid 1000, never as root. */}}
{{- define "dlhub.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- /* Container-level security: no privilege escalation, no capabilities. */}}
{{- define "dlhub.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end }}

{{- define "dlhub.image" -}}
{{- printf "%s:%s" .repository (toString .tag) }}
{{- end }}

{{- /* Scheduling settings of a component's pods (its values section). */}}
{{- define "dlhub.scheduling" -}}
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

{{- /* The PodDisruptionBudget API is policy/v1 (Kubernetes 1.21+); older clusters get none. */}}
{{- define "dlhub.pdb.available" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" }}true{{- end }}
{{- end }}

{{- /* Egress to DNS: any destination, port 53 over UDP and TCP. */}}
{{- define "dlhub.netpol.dns" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}
