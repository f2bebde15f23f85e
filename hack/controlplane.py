"""Start and stop a real local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

This is the envtest pattern without Docker: no scheduler and no kubelet, so pods stay Pending, but
schema validation, CEL, RBAC, watches, Deployments -> ReplicaSets and garbage collection are real.
Binaries come from hack/build-control-plane.sh (cached outside the repo, keyed by version).

    python hack/controlplane.py up --dir .cluster     # leaves .cluster/kubeconfig and .cluster/bin/kubectl
    python hack/controlplane.py down --dir .cluster   # stops every process it started, by PID
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appconfig_sync.emulator.tls import CA_CERT_FILE as CA, CA_KEY_FILE, CERT_FILE, KEY_FILE, ensure_tls

HACK = Path(__file__).resolve().parent
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
READY_TIMEOUT = float(os.environ.get("CONTROLPLANE_READY_TIMEOUT", "90"))

# Writes only: lets tests count what a client changed (e.g. "an operator restart makes zero writes").
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""


class ControlPlaneError(RuntimeError):
    """A component could not be built, started or reached; the message names it and its log."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    helm: Path

    @classmethod
    def from_cache(cls) -> Binaries:
        versions = dict(
            line.split("=", 1)
            for line in (HACK / "versions.env").read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        cache = Path(
            os.environ.get("APPCONFIG_SYNC_CACHE")
            or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "appconfig-sync"
        )
        k8s = cache / "bin" / f"kubernetes-{versions['KUBERNETES_VERSION']}"
        return cls(
            etcd=cache / "bin" / f"etcd-{versions['ETCD_VERSION']}" / "etcd",
            kube_apiserver=k8s / "kube-apiserver",
            kube_controller_manager=k8s / "kube-controller-manager",
            kubectl=k8s / "kubectl",
            helm=cache / "bin" / f"helm-{versions['HELM_VERSION']}" / "helm",
        )

    def check(self) -> None:
        for path in (self.etcd, self.kube_apiserver, self.kube_controller_manager, self.kubectl):
            if not os.access(path, os.X_OK):
                raise ControlPlaneError(f"{path.name} is not built ({path} missing); run `make control-plane` first")


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane, described by the files in its directory."""

    dir: Path

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def kubectl_path(self) -> Path:
        return self.dir / "bin" / "kubectl"

    @property
    def audit_log(self) -> Path:
        return self.dir / "logs" / "audit.log"

    @property
    def state(self) -> dict:
        return json.loads((self.dir / "state.json").read_text())

    @property
    def server(self) -> str:
        return self.state["server"]

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def api_client(self, kubeconfig: Path | None = None):  # -> kubernetes.client.ApiClient
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig or self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def mint_kubeconfig(
        self, namespace: str, service_account: str, manifests: list[str] | None = None, out: Path | None = None
    ) -> Path:
        """A kubeconfig that authenticates only as `namespace/service_account` (token via TokenRequest).

        `manifests` (YAML text, e.g. the project's RBAC) are applied as admin first.
        """
        self.kubectl("create", "namespace", namespace, check=False)
        self.kubectl("-n", namespace, "create", "serviceaccount", service_account, check=False)
        for manifest in manifests or []:
            self.kubectl("apply", "-f", "-", input=manifest)
        token = self.kubectl("-n", namespace, "create", "token", service_account, "--duration=24h").stdout.strip()
        out = out or self.dir / f"kubeconfig-{namespace}-{service_account}"
        ca = base64.b64encode((self.dir / "pki" / CA).read_bytes()).decode()
        out.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "local", "cluster": {"server": self.server, "certificate-authority-data": ca}}],
                    "users": [{"name": service_account, "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "local",
                            "context": {"cluster": "local", "user": service_account, "namespace": namespace},
                        }
                    ],
                    "current-context": "local",
                },
                indent=2,
            )
        )
        out.chmod(0o600)
        return out


# --- certificates ---------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def make_pki(pki: Path) -> None:
    """The API server's CA and serving cert (the emulator's TLS helper makes both), an admin client cert
    in system:masters signed by that CA, and the service-account signing key."""
    ensure_tls(pki, hosts=("127.0.0.1", "localhost", "10.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc"))
    ca = x509.load_pem_x509_certificate((pki / CA).read_bytes())
    ca_key = serialization.load_pem_private_key((pki / CA_KEY_FILE).read_bytes(), password=None)
    admin_key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    admin = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .issuer_name(ca.subject)
        .public_key(admin_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(admin_key, pki / "admin.key")
    (pki / "admin.crt").write_bytes(admin.public_bytes(serialization.Encoding.PEM))

    sa_key = _key()
    _write_key(sa_key, pki / "sa.key")
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def write_admin_kubeconfig(path: Path, server: str, pki: Path) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": b64(CA)}}],
                "users": [
                    {
                        "name": "admin",
                        "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
                    }
                ],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
                "current-context": "local",
            },
            indent=2,
        )
    )
    path.chmod(0o600)


# --- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(name: str, argv: list[str], logs: Path) -> subprocess.Popen[bytes]:
    log = open(logs / f"{name}.log", "ab")
    # A session of its own: `make cluster` returns while the components keep running.
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_ready(name: str, proc: subprocess.Popen[bytes], url: str, logs: Path, context: ssl.SSLContext | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ControlPlaneError(f"{name} exited with code {proc.returncode} while starting; log: {logs / (name + '.log')}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise ControlPlaneError(
        f"{name} did not become ready within {READY_TIMEOUT:.0f}s ({url}: {last}); log: {logs / (name + '.log')}"
    )


def up(directory: Path) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager on free ports; on failure stop what started."""
    bins = Binaries.from_cache()
    bins.check()
    directory = directory.resolve()
    if (directory / "state.json").exists():
        down(directory)
    for sub in ("pki", "etcd", "logs", "bin"):
        shutil.rmtree(directory / sub, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    logs = directory / "logs"
    logs.mkdir()
    (directory / "bin").mkdir()
    os.symlink(bins.kubectl, directory / "bin" / "kubectl")
    pki = directory / "pki"
    make_pki(pki)
    (directory / "audit-policy.yaml").write_text(AUDIT_POLICY)

    etcd_port, peer_port, api_port, kcm_port = (free_port() for _ in range(4))
    server = f"https://127.0.0.1:{api_port}"
    state: dict = {"server": server, "pids": {}, "binaries": {}}
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def record(name: str, binary: Path, proc: subprocess.Popen[bytes]) -> None:
        procs[name] = proc
        state["pids"][name] = proc.pid
        state["binaries"][name] = str(binary)
        (directory / "state.json").write_text(json.dumps(state, indent=2))

    try:
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        record(
            "etcd",
            bins.etcd,
            _start(
                "etcd",
                [
                    str(bins.etcd),
                    f"--data-dir={directory / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=default={peer_url}",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                logs,
            ),
        )
        _wait_ready("etcd", procs["etcd"], f"{etcd_url}/health", logs, None)

        record(
            "kube-apiserver",
            bins.kube_apiserver,
            _start(
                "kube-apiserver",
                [
                    str(bins.kube_apiserver),
                    f"--etcd-servers={etcd_url}",
                    f"--secure-port={api_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--tls-cert-file={pki / CERT_FILE}",
                    f"--tls-private-key-file={pki / KEY_FILE}",
                    f"--client-ca-file={pki / CA}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--allow-privileged=true",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer={server}/",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--audit-policy-file={directory / 'audit-policy.yaml'}",
                    f"--audit-log-path={logs / 'audit.log'}",
                    "--audit-log-format=json",
                    "--audit-log-mode=blocking",
                    f"--cert-dir={pki}",
                    "--v=1",
                ],
                logs,
            ),
        )
        admin_ctx = ssl.create_default_context(cafile=str(pki / CA))
        admin_ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        _wait_ready("kube-apiserver", procs["kube-apiserver"], f"{server}/readyz", logs, admin_ctx)
        write_admin_kubeconfig(directory / "kubeconfig", server, pki)

        record(
            "kube-controller-manager",
            bins.kube_controller_manager,
            _start(
                "kube-controller-manager",
                [
                    str(bins.kube_controller_manager),
                    f"--kubeconfig={directory / 'kubeconfig'}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={kcm_port}",
                    f"--cert-dir={pki / 'kcm'}",
                    "--leader-elect=false",
                    f"--root-ca-file={pki / CA}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    "--controllers=deployment-controller,replicaset-controller,statefulset-controller,"
                    "daemonset-controller,garbage-collector-controller,namespace-controller,"
                    "serviceaccount-controller,serviceaccount-token-controller",
                    "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                    "--v=1",
                ],
                logs,
            ),
        )
        _wait_ready(
            "kube-controller-manager",
            procs["kube-controller-manager"],
            f"https://127.0.0.1:{kcm_port}/healthz",
            logs,
            ssl._create_unverified_context(),  # its self-signed serving cert; only readiness is read
        )
    except BaseException:
        down(directory)
        raise
    return ControlPlane(directory)


def _is_ours(pid: int, binary: str) -> bool:
    """Guards against a recycled PID: only signal a process still running our binary."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return exe.removesuffix(" (deleted)") == str(Path(binary).resolve())


def down(directory: Path) -> None:
    """Stop every component recorded in state.json (reverse start order), by PID."""
    state_file = directory / "state.json"
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    running = [
        (name, pid)
        for name, pid in reversed(list(state["pids"].items()))
        if _is_ours(pid, state["binaries"][name])
    ]
    for _name, pid in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for _name, pid in running:
        while _is_ours(pid, state["binaries"][_name]) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _is_ours(pid, state["binaries"][_name]):
            os.kill(pid, signal.SIGKILL)
        _reap(pid, block=True)
    state_file.unlink()


def _reap(pid: int, block: bool = False) -> None:
    """Collect the exit status when the component is our own child (started in this process)."""
    try:
        os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=Path(".cluster"))
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            started = time.monotonic()
            plane = up(args.dir)
            print(f"control plane ready in {time.monotonic() - started:.1f}s at {plane.server}")
            print(f"  export KUBECONFIG={plane.kubeconfig}")
            print(f"  {plane.kubectl_path} get ns")
        else:
            down(args.dir.resolve())
            print("control plane stopped")
    except ControlPlaneError as exc:
        print(f"controlplane: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
