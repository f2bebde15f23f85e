{{- define "appconfig-sync.labels" -}}
app.kubernetes.io/name: appconfig-sync
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "appconfig-sync.selectorLabels" -}}
app.kubernetes.io/name: appconfig-sync
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The install mode after defaulting, and the checks that values fit together; fails naming the value to fix. */}}
{{- define "appconfig-sync.installMode" -}}
{{- $mode := .Values.installMode | default (ternary "namespaced" "clusterwide" (gt (len .Values.watchNamespaces) 0)) -}}
{{- if not (has $mode (list "clusterwide" "namespaced")) -}}
{{- fail (printf "installMode=%q: use clusterwide, namespaced, or leave it empty" $mode) -}}
{{- end -}}
{{- if eq $mode "namespaced" -}}
{{- if not .Values.watchNamespaces -}}
{{- fail "installMode=namespaced needs watchNamespaces: list the namespaces to grant Roles in" -}}
{{- end -}}
{{- range .Values.watchNamespaces -}}
{{- if regexMatch "[*?!\\[]" . -}}
{{- fail (printf "watchNamespaces has the pattern %q: a Role needs an exact namespace; use installMode=clusterwide for patterns" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $mode -}}
{{- end }}

{{/* The rules of both modes (all on namespaced resources); docs/install.md explains each. */}}
{{- define "appconfig-sync.rules" -}}
- apiGroups: [appconfigsync.dev]
  resources: [appconfigsyncs]
  verbs: [list, watch, patch]
- apiGroups: [appconfigsync.dev]
  resources: [appconfigsyncs/status]
  verbs: [patch]
- apiGroups: [appconfigsync.dev]
  resources: [appconfigsyncs/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [list, patch]
{{- end }}
