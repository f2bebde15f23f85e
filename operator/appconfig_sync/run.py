"""`appconfig-sync run`: the operator process."""

from __future__ import annotations

import argparse
import logging

import kopf
from kubernetes import client, config

from appconfig_sync.sync import Kube


def kubernetes_client() -> client.ApiClient:
    """In-cluster credentials in a pod; otherwise KUBECONFIG or ~/.kube/config, as kopf itself does."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--namespace", action="append", default=[], dest="namespaces",
        help="watch only this namespace (repeatable; globs allowed); default: all namespaces",
    )
    parser.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"], help="json: one object per line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kopf.configure(
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=args.log_format == "text",  # "[namespace/name]" before each object's messages
        log_refkey="object" if args.log_format == "json" else None,
    )
    logging.getLogger().setLevel(args.log_level)
    # The Azure SDKs log every request at INFO, headers included: keep them quiet.
    logging.getLogger("azure").setLevel(logging.WARNING)
    import appconfig_sync.handlers  # noqa: F401 - registers the handlers

    kopf.run(
        standalone=True,
        clusterwide=not args.namespaces,
        namespaces=args.namespaces,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(kube=Kube.from_api_client(kubernetes_client())),
    )
    return 0
