"""appconfig-sync: keep Kubernetes ConfigMaps in step with Azure App Configuration."""

GROUP = "appconfigsync.dev"
VERSION = "v1alpha1"
PLURAL = "appconfigsyncs"
KIND = "AppConfigSync"
PREFIX = f"{GROUP}/"
