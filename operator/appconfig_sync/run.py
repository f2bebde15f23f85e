"""`appconfig-sync run`: the operator process."""

from __future__ import annotations

import argparse
import logging

import kopf
from kubernetes import client, config

from appconfig_sync import leader, metrics
from appconfig_sync.access import AzureOptions
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
    parser.add_argument(
        "--metrics-port", type=int, default=0, metavar="PORT",
        help="serve Prometheus metrics on http://0.0.0.0:PORT/metrics; 0 (default) = off (deploy/ uses 9090)",
    )
    parser.add_argument(
        "--leader-elect", action="store_true",
        help="run as one of several replicas: only the holder of a coordination.k8s.io Lease works",
    )
    parser.add_argument(
        "--leader-election-namespace", metavar="NS",
        help=f"the Lease's namespace; default: the pod's namespace, else {leader.DEFAULT_NAMESPACE}",
    )
    parser.add_argument(
        "--ca-file", metavar="PEM",
        help="trust this CA bundle for the store, Entra ID and Key Vault (private endpoints, a local emulator)",
    )
    parser.add_argument(
        "--keyvault-skip-challenge-verification", action="store_true",
        help="accept Key Vault auth challenges from hosts outside vault.azure.net (only for a local emulator)",
    )
    parser.add_argument("--leader-election-id", default=leader.DEFAULT_ID, metavar="NAME", help="the Lease's name")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kopf.configure(
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=args.log_format == "text",  # "[namespace/name]" before each object's messages
        log_refkey="object" if args.log_format == "json" else None,
    )
    logging.getLogger().setLevel(args.log_level)
    # Even with --log-level DEBUG: the Azure SDKs log requests with headers, and the Kubernetes client and
    # urllib3 log response bodies, which for Secrets hold their data.
    for noisy in ("azure", "kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import appconfig_sync.handlers  # noqa: F401 - registers the handlers

    metrics.serve(args.metrics_port)  # before the election: a standby's metrics say it is one

    def operate() -> None:
        kopf.run(
            standalone=True,
            clusterwide=not args.namespaces,
            namespaces=args.namespaces,
            liveness_endpoint=args.liveness,
            memo=kopf.Memo(
                kube=Kube.from_api_client(kubernetes_client()),
                azure=AzureOptions(args.ca_file, verify_challenge_resource=not args.keyvault_skip_challenge_verification),
            ),
        )

    if not args.leader_elect:
        metrics.LEADER.set(1)
        operate()
        return 0
    elector = leader.LeaseElector(
        # Its own ApiClient (connection pool), so busy sync threads cannot delay a renewal.
        client.CoordinationV1Api(kubernetes_client()),
        args.leader_election_namespace or leader.default_namespace(),
        args.leader_election_id,
        leader.default_identity(),
    )
    return leader.lead(elector, operate, args.liveness)
