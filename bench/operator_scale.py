"""What N AppConfigSyncs cost, next to what a full reload per interval would cost (the baseline).

Starts a local control plane, an in-process emulator holding K keys and a Sentinel, and the operator as a
subprocess; creates N AppConfigSyncs in one namespace, then prints:
  - time until all N are Ready, and the operator's RSS;
  - an idle window: store requests (all conditional, answered 304) and Kubernetes writes (audit log),
    next to the baseline: what re-listing the whole selection every interval (an app calling load() on a
    timer, or a poller without a sentinel ETag) sends in the same window, measured against the same emulator;
  - the latency from a Sentinel bump to all N ConfigMaps updated (p50, max);
  - an operator restart: Kubernetes writes (expected 0) and store requests (expected: only 304s; status says
    the targets are current, so nothing is listed until a sentinel changes).

    .venv/bin/python bench/operator_scale.py [--objects 50] [--keys 200] [--interval 5] [--window 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting
from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))

from controlplane import ControlPlane, down, up  # noqa: E402

from appconfig_sync.emulator.server import EmulatorServer  # noqa: E402

NS = "bench"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def audit_writes(plane: ControlPlane, since: int) -> int:
    with open(plane.audit_log, "rb") as log:
        log.seek(since)
        return sum(1 for line in log if line.strip() and json.loads(line)["user"]["username"] == "admin"
                   and json.loads(line)["objectRef"].get("namespace") == NS)


def wait(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.2)
    raise SystemExit(f"bench: {what} did not happen within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--window", type=int, default=30)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="acs-bench-"))
    plane = up(work / "cluster")
    operator: subprocess.Popen[bytes] | None = None
    try:
        with EmulatorServer() as emulator, AzureAppConfigurationClient.from_connection_string(
            emulator.connection_string
        ) as store:
            for i in range(args.keys):
                store.set_configuration_setting(ConfigurationSetting(key=f"app:setting{i:04d}", value=f"value {i}"))
            store.set_configuration_setting(ConfigurationSetting(key="Sentinel", value="1"))

            plane.kubectl("apply", "-f", str(REPO / "crds"))
            plane.kubectl("wait", "--for=condition=Established", "crd/appconfigsyncs.appconfigsync.dev")
            plane.kubectl("create", "namespace", NS)
            plane.kubectl("-n", NS, "create", "secret", "generic", "appconfig",
                          f"--from-literal=connectionString={emulator.connection_string}")
            objects = [
                {"apiVersion": "appconfigsync.dev/v1alpha1", "kind": "AppConfigSync",
                 "metadata": {"name": f"app{i}", "namespace": NS},
                 "spec": {"store": {"connectionStringSecretRef": {"name": "appconfig"}},
                          "selectors": [{"keyFilter": "app:*"}], "trimKeyPrefixes": ["app:"],
                          "refresh": {"interval": f"{args.interval}s", "sentinel": {"key": "Sentinel"}},
                          "target": {"configMap": {"name": f"app{i}-config"}}}}
                for i in range(args.objects)
            ]
            plane.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
            custom = client.CustomObjectsApi(plane.api_client())
            core = client.CoreV1Api(plane.api_client())

            def all_ready() -> bool:
                items = custom.list_namespaced_custom_object("appconfigsync.dev", "v1alpha1", NS, "appconfigsyncs")["items"]
                return sum(any(c["type"] == "Ready" and c["status"] == "True" for c in (o.get("status") or {}).get(
                    "conditions", [])) for o in items) == args.objects

            def start_operator() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    [sys.executable, "-m", "appconfig_sync", "run", "--namespace", NS, "--log-level", "WARNING"],
                    env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
                    stdout=open(work / "operator.log", "ab"), stderr=subprocess.STDOUT,
                )

            operator = start_operator()
            ready_after = wait(all_ready, 300, "all objects Ready")
            time.sleep(2 * args.interval)  # let status writes and first checks settle
            print(f"objects={args.objects} keys={args.keys} interval={args.interval}s")
            print(f"all Ready after           {ready_after:8.1f} s  from the operator's start")
            print(f"operator RSS              {rss_mib(operator.pid):8.1f} MiB")

            emulator.request_log.clear()
            mark = plane.audit_log.stat().st_size
            time.sleep(args.window)
            ours = emulator.request_log.records()
            writes = audit_writes(plane, mark)
            not_modified = sum(1 for r in ours if r.status == 304)

            # Baseline: every object re-lists its whole selection once per interval, as a timer-driven load() does.
            emulator.request_log.clear()
            rounds = max(1, args.window // args.interval)
            baseline_started = time.monotonic()
            for _ in range(rounds):
                for _ in range(args.objects):
                    list(store.list_configuration_settings(key_filter="app:*"))
            baseline_seconds = time.monotonic() - baseline_started
            baseline = emulator.request_log.records()
            print(f"\nidle window {args.window}s            {'appconfig-sync':>16} {'baseline (full reload)':>24}")
            print(f"store requests            {len(ours):>16} {len(baseline):>24}")
            print(f"  answered 304            {not_modified:>16} {0:>24}")
            print(f"  settings transferred    {0:>16} {rounds * args.objects * args.keys:>24}")
            print(f"kubernetes writes         {writes:>16} {'n/a':>24}")
            print(f"(the baseline's {len(baseline)} requests took {baseline_seconds:.1f}s of client time)")

            mark = plane.audit_log.stat().st_size
            bumped = time.monotonic()
            store.set_configuration_setting(ConfigurationSetting(key="app:setting0000", value="changed"))
            store.set_configuration_setting(ConfigurationSetting(key="Sentinel", value="2"))
            latencies: dict[str, float] = {}
            while len(latencies) < args.objects and time.monotonic() - bumped < 120:
                for cm in core.list_namespaced_config_map(NS).items:
                    if (cm.data or {}).get("setting0000") == "changed" and cm.metadata.name not in latencies:
                        latencies[cm.metadata.name] = time.monotonic() - bumped
                time.sleep(0.2)
            values = sorted(latencies.values())
            print(f"\nsentinel bump -> ConfigMaps updated: {len(values)}/{args.objects}, "
                  f"p50 {statistics.median(values):.1f}s, max {values[-1]:.1f}s (interval {args.interval}s)")
            print(f"kubernetes writes for the change: {audit_writes(plane, mark)} "
                  f"({args.objects} ConfigMaps + status + Events)")

            time.sleep(2 * args.interval)
            operator.terminate()
            operator.wait(timeout=60)
            emulator.request_log.clear()
            mark = plane.audit_log.stat().st_size
            operator = start_operator()
            time.sleep(max(20, 3 * args.interval))
            after = emulator.request_log.records()
            lists = sum(1 for r in after if r.route == "kv")
            print(f"\nrestart ({max(20, 3 * args.interval)}s): kubernetes writes {audit_writes(plane, mark)}, "
                  f"store requests {len(after)}: {sum(1 for r in after if r.status == 304)} answered 304, "
                  f"{lists} list pages (the baseline reloads every selection: {args.objects} x pages)")
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=60)
        down(work / "cluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
