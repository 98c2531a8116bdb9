"""Alertmanager's named default templates, written for this daemon.

Same names and the same output, character for character where Alertmanager documents or
tests it (``__subject`` is ``[FIRING:2] <group label values> (<other common label
values>)``, with its trailing space when there are none), so a user template that calls
``{{ template "slack.default.title" . }}`` or ``"__text_alert_list"`` gets what it would
get from Alertmanager. ``email.default.html`` is a plain HTML page of our own.

Defined: ``__alertmanager``, ``__alertmanagerURL``, ``__subject``, ``__description``,
``__text_alert_list``, ``__text_alert_list_markdown``, ``slack.default.*``,
``pagerduty.default.*``, ``email.default.subject``/``.html``,
``sns.default.subject``/``.message``, ``opsgenie.default.message``/``.description``/``.source``.
The other integrations' defaults (telegram, discord, msteams...) are not: those
integrations do not exist here, and a template calling one is refused at load.
"""

from __future__ import annotations

SOURCE_NAME = "<default templates>"

DEFAULTS = r"""
{{- define "__alertmanager" }}Alertmanager{{ end }}
{{- define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ urlquery .Receiver }}{{ end }}

{{- /* [FIRING:n] <group label values> (<the other common label values>) */ -}}
{{- define "__subject" -}}
  [{{ toUpper .Status }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}]
  {{- " " }}{{ join " " .GroupLabels.SortedPairs.Values }}{{ " " }}
  {{- if gt (len .CommonLabels) (len .GroupLabels) -}}
    ({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ join " " .Values }}{{ end }})
  {{- end -}}
{{- end }}
{{- define "__description" }}{{ end }}

{{- define "__text_alert_list" -}}
{{ range . -}}
Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end -}}
Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end -}}
Source: {{ .GeneratorURL }}
{{ end -}}
{{- end }}

{{- define "__text_alert_list_markdown" -}}
{{ range . }}
Labels:
{{ range .Labels.SortedPairs }}  - {{ .Name }} = {{ .Value }}
{{ end }}
Annotations:
{{ range .Annotations.SortedPairs }}  - {{ .Name }} = {{ .Value }}
{{ end }}
Source: {{ .GeneratorURL }}
{{ end }}
{{ end }}

{{- define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{- define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{- define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{- define "slack.default.callbackid" }}{{ end }}
{{- define "slack.default.pretext" }}{{ end }}
{{- define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{- define "slack.default.iconemoji" }}{{ end }}
{{- define "slack.default.iconurl" }}{{ end }}
{{- define "slack.default.text" }}{{ end }}
{{- define "slack.default.footer" }}{{ end }}
{{- define "slack.default.color" }}{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}{{ end }}

{{- define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{- define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{- define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{- define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}

{{- /* Annotations first, then the firing and the resolved alerts, each under a heading. */ -}}
{{- define "__monitor_annotations_and_alerts" -}}
{{ join " " .CommonAnnotations.SortedPairs.Values }}
{{ with .Alerts.Firing }}Alerts Firing:
{{ template "__text_alert_list" . }}{{ end }}
{{ with .Alerts.Resolved }}Alerts Resolved:
{{ template "__text_alert_list" . }}{{ end }}
{{- end }}

{{- define "opsgenie.default.message" }}{{ template "__subject" . }}{{ end }}
{{- define "opsgenie.default.description" }}{{ template "__monitor_annotations_and_alerts" . }}{{ end }}
{{- define "opsgenie.default.source" }}{{ template "__alertmanagerURL" . }}{{ end }}

{{- define "sns.default.subject" }}{{ template "__subject" . }}{{ end }}
{{- define "sns.default.message" -}}
{{ join " " .CommonAnnotations.SortedPairs.Values }}
{{ with .Alerts.Firing }}
Alerts Firing:
{{ template "__text_alert_list" . }}
{{ end }}
{{ with .Alerts.Resolved }}
Alerts Resolved:
{{ template "__text_alert_list" . }}
{{ end }}
{{ end }}

{{- define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{- define "email.default.html" -}}
<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ template "__subject" . }}</title>
</head>
<body style="margin:0;padding:16px;background:#f6f6f6;font-family:Helvetica,Arial,sans-serif;font-size:14px;color:#222">
<table width="100%" cellpadding="0" cellspacing="0" style="max-width:640px;margin:0 auto;background:#fff;border:1px solid #e0e0e0">
<tr><td style="padding:16px;color:#fff;background:{{ if eq .Status "firing" }}#d32f2f{{ else }}#2e7d32{{ end }};font-size:16px">
{{ len .Alerts }} alert{{ if gt (len .Alerts) 1 }}s{{ end }} for {{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
</td></tr>
<tr><td style="padding:16px">
<p><a href="{{ template "__alertmanagerURL" . }}" style="color:#1565c0">Open the monitor</a></p>
{{- range $heading, $alerts := dict "Firing" .Alerts.Firing "Resolved" .Alerts.Resolved }}
{{- if $alerts }}
<h3 style="margin:16px 0 8px">{{ $heading }}: {{ len $alerts }}</h3>
{{- range $alerts }}
<div style="border-top:1px solid #e0e0e0;padding:8px 0">
<strong>Labels</strong><br>
{{- range .Labels.SortedPairs }}
{{ .Name }} = {{ .Value }}<br>
{{- end }}
{{- if .Annotations }}
<strong>Annotations</strong><br>
{{- range .Annotations.SortedPairs }}
{{ .Name }} = {{ .Value }}<br>
{{- end }}
{{- end }}
{{- if .GeneratorURL }}
<a href="{{ .GeneratorURL }}" style="color:#1565c0">Source</a>
{{- end }}
</div>
{{- end }}
{{- end }}
{{- end }}
</td></tr>
</table>
</body>
</html>
{{ end }}
"""
