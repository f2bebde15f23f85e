"""A local Azure App Configuration service that the unmodified Azure SDKs talk to."""
