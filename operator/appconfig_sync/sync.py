"""One AppConfigSync's life: load, render, write if changed, roll, report; then cheap checks per interval.

Everything here is driven by the object itself (its live body) and the store. The only things kept in
memory are the provider (a cache of the store, rebuilt on start) and what was last written, so an
operator restart reloads once, finds the targets already current, and writes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.appconfiguration.provider.aio import AzureAppConfigurationProvider
from kubernetes import client
from kubernetes.client.rest import ApiException

from appconfig_sync import GROUP, PLURAL, VERSION, events, metrics
from appconfig_sync.access import AccessError, AzureOptions, resolve_access
from appconfig_sync.objects import CONFIG_HASH, REFRESH_REQUESTED, SECRET_HASH, ObjectRef
from appconfig_sync.render import FEATURE_MANAGEMENT, RenderError, data_hash, render
from appconfig_sync.rollout import Change, roll
from appconfig_sync.spec import AppConfigSyncSpec, RolloutPolicy, SpecError, Target, parse_spec
from appconfig_sync.status import Outcome, next_status, status_patch
from appconfig_sync.store import (
    Failure,
    SecretReferences,
    StoreAccess,
    classify,
    open_store,
    sentinel_etag,
    sentinel_unchanged,
)
from appconfig_sync.targets import Kind, TargetConflict, apply_target

MAX_BACKOFF = 300.0
SPEC_POLL = 1.0
# Failures that a retry at the normal interval can fix as soon as the user acts (e.g. creates the Secret).
USER_FIXABLE = {"SecretNotFound", "TargetConflict", "InvalidKeys", "TooLarge", "InvalidStoreSettings", "InvalidSpec"}


def feature_flags(spec: AppConfigSyncSpec, loaded: Mapping[str, Any]) -> list[Any] | None:
    """The flags the provider loaded (under feature_management), or None when the spec asks for none."""
    if spec.feature_flags is None:
        return None
    return list((loaded.get(FEATURE_MANAGEMENT) or {}).get("feature_flags") or [])


def render_targets(
    spec: AppConfigSyncSpec, loaded: Mapping[str, Any], references: SecretReferences
) -> list[tuple[Kind, Target, dict[str, str]]]:
    """Each target's data from what the provider loaded: Key Vault values to the Secret, the rest (and the
    flags) to the ConfigMap. Raises RenderError before anything is written."""
    plain, secrets = references.split({k: v for k, v in loaded.items() if k != FEATURE_MANAGEMENT})
    rendered: list[tuple[Kind, Target, dict[str, str]]] = [
        ("ConfigMap", spec.target.config_map, render(plain, spec.target.config_map, feature_flags(spec, loaded)))
    ]
    if spec.target.secret is not None:
        rendered.append(("Secret", spec.target.secret, render(secrets, spec.target.secret)))
    return rendered


def next_delay(interval: float, outcome: Outcome, failures: int, retry_after: float | None) -> float:
    """Seconds to the next pass: the interval while all is well or the fix is the user's; otherwise a
    doubling backoff capped at 5 minutes (or the interval, if longer), never sooner than Retry-After."""
    if outcome.ready or outcome.reason in USER_FIXABLE:
        return interval
    backoff = min(interval * 2 ** (failures - 1), max(MAX_BACKOFF, interval))
    return max(backoff, retry_after or 0.0)


@dataclass(frozen=True)
class Kube:
    """The Kubernetes API groups this operator writes to (the official client; calls run in threads)."""

    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi

    @classmethod
    def from_api_client(cls, api: client.ApiClient) -> Kube:
        return cls(client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api))


@dataclass
class Loaded:
    """The store as loaded for one generation of the spec (and one on-demand refresh request)."""

    spec: AppConfigSyncSpec
    provider: AzureAppConfigurationProvider
    access: StoreAccess
    references: SecretReferences
    key: tuple[int, str | None]
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Resumed:
    """After an operator restart, when the targets are current and the sentinel is unchanged: the store is not
    loaded (no listing, no Key Vault calls) until the sentinel changes. Each pass sends the same single
    conditional GET the provider's refresh() would."""

    spec: AppConfigSyncSpec
    access: StoreAccess
    key: tuple[int, str | None]
    etag: str


@dataclass
class SyncLoop:
    body: Mapping[str, Any]  # kopf's live view: always the latest object
    kube: Kube
    logger: logging.Logger | logging.LoggerAdapter
    target_hashes: Callable[[Kind, str, str], str | None]
    """(kind, namespace, name) -> the data hash a target holds now, from the operator's watch."""
    azure: AzureOptions = field(default_factory=AzureOptions)

    loaded: Loaded | None = None
    resumed: Resumed | None = None
    may_resume: bool = True  # only the first load of this process may resume from status
    published: dict[Kind, str] = field(default_factory=dict)
    """The data hash each target should hold; a different one in the watch means a manual edit."""
    next_secret_check: float = 0.0
    written_status: dict[str, Any] | None = None
    failures: int = 0
    retry_after: float | None = None

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef.of_sync(self.body)

    def _load_key(self) -> tuple[int, str | None]:
        meta = self.body["metadata"]
        return meta.get("generation", 0), (meta.get("annotations") or {}).get(REFRESH_REQUESTED)

    async def run(self, stopped: Any) -> None:
        try:
            while not stopped:
                delay = await self.step()
                await self._sleep(delay, stopped)
        finally:
            metrics.forget(self.ref.namespace, self.ref.name)
            await self._close()

    async def step(self) -> float:
        """One pass; returns how long to wait before the next one."""
        started = time.monotonic()
        if self.resumed is not None and self.resumed.key == self._load_key():
            outcome = await self._check_resumed()
        elif self.loaded is None or self.loaded.key != self._load_key():
            outcome = await self._load()
        else:
            outcome = await self._check()
        metrics.record_pass(self.ref.namespace, self.ref.name, outcome, started)
        if outcome is None:  # idle: nothing changed, nothing to report
            current = self.loaded or self.resumed
            return current.spec.refresh.interval.total_seconds() if current else 1.0
        await self._report(outcome)
        return self._delay(outcome)

    async def _load(self) -> Outcome | None:
        await self._close()
        key = self._load_key()
        try:
            spec = parse_spec(self.body)
        except SpecError as exc:
            return self._failed(Failure("InvalidSpec", f"{exc.field}: {exc.message}"))
        try:
            access = await asyncio.to_thread(resolve_access, self.kube.core, self.ref.namespace, spec, self.azure)
        except AccessError as exc:
            return self._failed(Failure(exc.reason, exc.message))
        if self.may_resume:
            self.may_resume = False
            etag = self._resumable(spec, key)
            try:
                if etag is not None and await sentinel_unchanged(spec, access, etag):
                    self.resumed = Resumed(spec, access, key, etag)
                    return None
            except Exception:  # noqa: BLE001 - the full load below reports whatever is wrong
                pass
        reloaded = asyncio.Event()
        references = SecretReferences(spec.trim_key_prefixes)
        try:
            provider = await open_store(
                spec, access, reloaded.set, references, per_retry_policies=[metrics.STORE_REQUEST_COUNTER]
            )
        except Exception as exc:  # noqa: BLE001 - every store error becomes a reason in status
            await access.close()
            return self._failed(classify(exc))
        references.settle()
        self.loaded = Loaded(spec, provider, access, references, key, reloaded)
        return await self._publish(refresh_request=key[1], force=True)

    def _resumable(self, spec: AppConfigSyncSpec, key: tuple[int, str | None]) -> str | None:
        """The sentinel ETag to resume from, when status says the targets hold the store's data for this very
        spec and the watch confirms they still do; None when a full load is needed."""
        status = self.body.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        kv = spec.key_vault
        if (
            spec.refresh.sentinel is None  # page-ETag mode: the provider holds the page ETags
            or spec.feature_flags is not None  # flags are checked by page ETag too
            or (kv is not None and kv.refresh_interval is not None)  # secrets are re-read on a timer
            or ready.get("status") != "True"
            or status.get("observedGeneration") != key[0]
            or status.get("lastRefreshRequest") != key[1]
        ):
            return None
        hashes: dict[Kind, str | None] = {"ConfigMap": status.get("dataHash"), "Secret": status.get("secretDataHash")}
        targets = self._targets(spec)
        if any(not hashes[kind] or self.target_hashes(kind, self.ref.namespace, name) != hashes[kind] for kind, name in targets):
            return None
        self.published = {kind: hashes[kind] for kind, _ in targets}  # type: ignore[misc]
        return status.get("sentinelETag") or None

    async def _check_resumed(self) -> Outcome | None:
        assert self.resumed is not None
        resumed = self.resumed
        drifted = any(
            self.target_hashes(kind, self.ref.namespace, name) != self.published.get(kind)
            for kind, name in self._targets(resumed.spec)
        )
        try:
            unchanged = await sentinel_unchanged(resumed.spec, resumed.access, resumed.etag)
        except Exception as exc:  # noqa: BLE001
            return self._failed(classify(exc))
        if unchanged and not drifted and not self.failures:
            return None
        return await self._load()  # a change, a repair or a recovery: load everything, as usual

    async def _check(self) -> Outcome | None:
        """The per-interval pass: repair drift of the target, then one cheap conditional check of the store."""
        assert self.loaded is not None
        loaded = self.loaded
        drifted = any(
            self.target_hashes(kind, self.ref.namespace, name) != self.published.get(kind)
            for kind, name in self._targets(loaded.spec)
        )
        loaded.references.discard()
        try:
            await loaded.provider.refresh()
        except Exception as exc:  # noqa: BLE001
            failure = classify(exc)
            if failure.reason == "AuthenticationFailed":
                await self._close()  # the next pass re-reads the credentials: they may have been rotated
            return self._failed(failure)
        loaded.references.settle()
        # The provider re-resolves Key Vault secrets inside refresh() on its own timer, without a callback:
        # look at the rendered Secret on the same cadence (rendering alone, no request unless it changed).
        kv = loaded.spec.key_vault
        secrets_due = kv is not None and kv.refresh_interval is not None and time.monotonic() >= self.next_secret_check
        if loaded.reloaded.is_set() or drifted or self.failures or secrets_due:
            loaded.reloaded.clear()
            return await self._publish(refresh_request=loaded.key[1], force=drifted or bool(self.failures))
        return None

    @staticmethod
    def _targets(spec: AppConfigSyncSpec) -> list[tuple[Kind, str]]:
        targets: list[tuple[Kind, str]] = [("ConfigMap", spec.target.config_map.name)]
        if spec.target.secret is not None:
            targets.append(("Secret", spec.target.secret.name))
        return targets

    async def _publish(self, refresh_request: str | None, force: bool = False) -> Outcome:
        """Render what the provider holds and make the targets match it; roll consumers on a real change.

        Both targets are rendered before either is written, so bad data leaves both as they were.
        """
        assert self.loaded is not None
        spec, provider = self.loaded.spec, self.loaded.provider
        flags = feature_flags(spec, provider)
        try:
            rendered = render_targets(spec, provider, self.loaded.references)
        except RenderError as exc:
            return self._failed(Failure(exc.reason, exc.message))
        digests: dict[Kind, str] = {}
        changes: list[Change] = []
        for kind, target, data in rendered:
            digest = digests[kind] = data_hash(data)
            if not force and self.published.get(kind) == digest:
                continue
            try:
                new = await self._write(kind, target.name, data, digest)
            except TargetConflict as exc:
                return self._failed(Failure("TargetConflict", str(exc)))
            except ApiException as exc:
                return self._failed(Failure("KubernetesError", f"writing {kind} {target.name}: HTTP {exc.status} {exc.reason}"))
            changes.append(Change(kind, target.name, CONFIG_HASH if kind == "ConfigMap" else SECRET_HASH, digest, new))
            self.published[kind] = digest
        if changes and spec.rollout is RolloutPolicy.ON_CHANGE:
            try:
                await self._roll(changes)
            except ApiException as exc:
                # The targets hold the new data; the next pass completes the rollout (see rollout.Change).
                return self._failed(Failure("RolloutFailed", f"rolling the consumers failed: HTTP {exc.status} {exc.reason}"))
        if spec.key_vault is not None and spec.key_vault.refresh_interval is not None:
            self.next_secret_check = time.monotonic() + spec.key_vault.refresh_interval.total_seconds()
        self.failures = 0
        config_data = rendered[0][2]
        message = f"{len(config_data)} keys synced to ConfigMap {spec.target.config_map.name}"
        if spec.target.secret is not None:
            message += f", {len(rendered[1][2])} to Secret {spec.target.secret.name}"
        return Outcome(
            ready=True,
            reason="Synced",
            message=message,
            key_count=len(config_data),
            data_hash=digests["ConfigMap"],
            feature_flag_count=len(flags) if flags is not None else None,
            secret_key_count=len(rendered[1][2]) if spec.target.secret is not None else None,
            secret_data_hash=digests.get("Secret"),
            synced=True,
            sentinel_etag=sentinel_etag(provider),
            secrets_refreshed=any(change.kind == "Secret" and change.new for change in changes),
            refresh_request=refresh_request,
        )

    async def _write(self, kind: Kind, name: str, data: dict[str, str], digest: str) -> bool:
        """Apply one target; True for a real store change: not on creation (the first sync) and not when
        a manual edit was repaired (the hash stamped before is the same)."""
        written = await asyncio.to_thread(apply_target, self.kube.core, kind, self.ref, name, data, digest)
        if not written.written:
            return False
        verb = "created" if written.previous_hash is None else "updated"
        metrics.target_written(kind, created=written.previous_hash is None)
        self.logger.info("%s %s %s: %d keys, hash %s", kind, name, verb, len(data), digest)
        await self._event("Normal", "Synced", f"{kind} {name} {verb}: {len(data)} keys (hash {digest})")
        return written.previous_hash not in (None, digest)

    async def _roll(self, changes: list[Change]) -> None:
        rolled = await asyncio.to_thread(roll, self.kube.apps, self.ref.namespace, changes)
        for item in rolled:
            metrics.rolled(item.workload.kind)
            what = " and ".join(f"{c.kind} {c.name} (hash {c.data_hash})" for c in item.changes)
            self.logger.info("rolled %s %s: %s changed", item.workload.kind, item.workload.name, what)
            message = f"{what} changed; rolling pods, as {self.ref} requested"
            await asyncio.to_thread(events.record, self.kube.core, item.workload, "Normal", "ConfigChanged", message)
        if rolled:
            names = ", ".join(f"{r.workload.kind}/{r.workload.name}" for r in rolled)
            targets = " and ".join(sorted({f"{c.kind} {c.name}" for r in rolled for c in r.changes}))
            await self._event("Normal", "RolledOut", f"{targets} changed; rolled {names}")

    def _failed(self, failure: Failure) -> Outcome:
        self.failures += 1
        self.retry_after = failure.retry_after
        return Outcome(ready=False, reason=failure.reason, message=failure.message)

    def _delay(self, outcome: Outcome) -> float:
        interval = self.loaded.spec.refresh.interval.total_seconds() if self.loaded else self._spec_interval()
        return next_delay(interval, outcome, self.failures, self.retry_after)

    def _spec_interval(self) -> float:
        try:
            return parse_spec(self.body).refresh.interval.total_seconds()
        except SpecError:
            return 30.0

    async def _report(self, outcome: Outcome) -> None:
        """Write status only when it changed; a Warning Event only when the failure reason is new."""
        current = dict(self.written_status or self.body.get("status") or {})
        previous_ready = next((c for c in current.get("conditions") or [] if c.get("type") == "Ready"), {})
        desired = next_status(current, outcome, self._load_key()[0], dt.datetime.now(dt.timezone.utc))
        patch = status_patch(current, desired)
        if not outcome.ready and previous_ready.get("reason") != outcome.reason:
            self.logger.warning("not ready: %s: %s", outcome.reason, outcome.message)
            await self._event("Warning", outcome.reason, outcome.message)
        elif outcome.ready and previous_ready.get("status") == "False":
            self.logger.info("recovered: %s", outcome.message)
        if patch is None:
            self.written_status = desired
            return
        ref = self.ref
        try:
            await asyncio.to_thread(
                self.kube.custom.patch_namespaced_custom_object_status,
                GROUP, VERSION, ref.namespace, PLURAL, ref.name, {"status": patch},
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            self.logger.warning("could not write status: HTTP %s %s", exc.status, exc.reason)
            return
        self.written_status = desired

    async def _event(self, type_: str, reason: str, message: str) -> None:
        await asyncio.to_thread(events.record, self.kube.core, self.ref, type_, reason, message)

    async def _sleep(self, delay: float, stopped: Any) -> None:
        """Sleep until the next pass is due; end early when the object's spec or refresh request changes.

        kopf keeps `body` current from its watch, so looking at it each second costs no request.
        """
        due = time.monotonic() + delay
        key = self._load_key()
        while not stopped and self._load_key() == key and (left := due - time.monotonic()) > 0:
            await stopped.wait(min(left, SPEC_POLL))

    async def _close(self) -> None:
        if self.resumed is not None:
            resumed, self.resumed = self.resumed, None
            await resumed.access.close()
        if self.loaded is not None:
            loaded, self.loaded = self.loaded, None
            await loaded.provider.close()
            await loaded.access.close()
