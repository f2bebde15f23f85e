"""`appconfig-sync render -f acs.yaml`: print the ConfigMap (and Secret) an AppConfigSync would produce."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import yaml

from appconfig_sync.access import AccessError, read_secret
from appconfig_sync.objects import DATA_HASH, MANAGED_BY, OWNER_LABEL
from appconfig_sync.render import RenderError, data_hash
from appconfig_sync.spec import AppConfigSyncSpec, SpecError, parse_spec
from appconfig_sync.store import SecretReferences, StoreAccess, classify, open_store
from appconfig_sync.sync import render_targets

CONNECTION_STRING_ENV = "APPCONFIG_CONNECTION_STRING"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", required=True, help="an AppConfigSync manifest (YAML or JSON; - for stdin)")
    parser.add_argument(
        "--connection-string-env", default=CONNECTION_STRING_ENV, metavar="VAR",
        help=f"read the store's connection string from this environment variable (default {CONNECTION_STRING_ENV}); "
        "when unset, the Secret named in the manifest is read from the cluster (KUBECONFIG)",
    )
    parser.add_argument("--ca-file", metavar="PEM", help="trust this CA bundle for the store")
    parser.set_defaults(func=main)


def _access(spec: AppConfigSyncSpec, body: dict[str, Any], args: argparse.Namespace) -> StoreAccess:
    options = (("connection_verify", args.ca_file),) if args.ca_file else ()
    from_env = os.environ.get(args.connection_string_env)
    if from_env:
        return StoreAccess(connection_string=from_env, client_options=options)
    if spec.store.endpoint:
        from azure.identity.aio import DefaultAzureCredential  # a developer's own sign-in (az login, env, ...)

        return StoreAccess(endpoint=spec.store.endpoint, credential=DefaultAzureCredential(), client_options=options)
    from appconfig_sync.run import kubernetes_client
    from kubernetes import client

    namespace = (body.get("metadata") or {}).get("namespace") or "default"
    ref = spec.store.connection_string
    assert ref is not None
    values = read_secret(client.CoreV1Api(kubernetes_client()), namespace, ref.name, (ref.key,), "spec.store.connectionStringSecretRef")
    return StoreAccess(connection_string=values[ref.key], client_options=options)


async def _render(spec: AppConfigSyncSpec, access: StoreAccess, name: str) -> list[dict[str, Any]]:
    references = SecretReferences(spec.trim_key_prefixes)
    provider = await open_store(spec, access, lambda: None, references)
    try:
        references.settle()
        manifests = []
        for kind, target, data in render_targets(spec, provider, references):
            if kind == "ConfigMap":
                manifests.append(_manifest(kind, target.name, name, data, "data"))
            else:  # a dry run shows which keys the Secret would hold, never their values
                redacted = {k: "<redacted>" for k in data}
                manifests.append(_manifest(kind, target.name, name, redacted, "stringData", data_hash(data)))
        return manifests
    finally:
        await provider.close()
        await access.close()


def _manifest(kind: str, target: str, owner: str, data: dict[str, str], field: str, digest: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": target,
            "labels": {**MANAGED_BY, OWNER_LABEL: owner},
            "annotations": {DATA_HASH: digest or data_hash(data)},
        },
        field: data,
    }


def main(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.filename == "-" else open(args.filename, encoding="utf-8").read()
        body = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        print(f"render: cannot read {args.filename}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(body, dict):
        print(f"render: {args.filename} does not hold an AppConfigSync object", file=sys.stderr)
        return 2
    try:
        spec = parse_spec(body)
    except SpecError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    name = (body.get("metadata") or {}).get("name", "")
    try:
        access = _access(spec, body, args)
        manifests = asyncio.run(_render(spec, access, name))
    except (RenderError, AccessError) as exc:
        print(f"render: {exc.reason}: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - every store failure becomes one clear line, with secrets scrubbed
        failure = classify(exc)
        print(f"render: {failure.reason}: {failure.message}", file=sys.stderr)
        return 1
    yaml.safe_dump_all(manifests, sys.stdout, sort_keys=False, allow_unicode=True)
    return 0
