"""The spec as provider options, provider errors as reasons, and which keys are Key Vault secrets."""

from __future__ import annotations

import asyncio

from azure.appconfiguration import ConfigurationSetting, SecretReferenceConfigurationSetting
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from appconfig_sync.spec import parse_spec
from appconfig_sync.store import SecretReferences, classify, provider_options, scrub


def spec(**fields):
    body = {"metadata": {"name": "web", "namespace": "ns"},
            "spec": {"store": {"connectionStringSecretRef": {"name": "appconfig"}},
                     "target": {"configMap": {"name": "web-config"}}, **fields}}
    return parse_spec(body)


def test_sentinel_becomes_a_watch_key_with_the_null_label() -> None:
    options = provider_options(spec(refresh={"interval": "5s", "sentinel": {"key": "Sentinel"}}))
    assert options["refresh_on"] == [("Sentinel", "\0")]
    assert "refresh_enabled" not in options
    (selector,) = options["selects"]
    assert (selector.key_filter, selector.label_filter) == ("*", "\0")


def test_without_a_sentinel_every_page_is_watched() -> None:
    options = provider_options(spec(refresh={"interval": "5s"}))
    assert options["refresh_enabled"] is True and "refresh_on" not in options


def test_selectors_keep_their_order_and_snapshots() -> None:
    options = provider_options(spec(selectors=[{"keyFilter": "app:*", "labelFilter": "prod", "tagFilters": ["env=prod"]},
                                              {"snapshotName": "release-1"}], trimKeyPrefixes=["app:"]))
    first, second = options["selects"]
    assert (first.key_filter, first.label_filter, first.tag_filters) == ("app:*", "prod", ["env=prod"])
    assert second.snapshot_name == "release-1"
    assert options["trim_prefixes"] == ["app:"]


def test_errors_become_reasons() -> None:
    assert classify(ClientAuthenticationError("401 Unauthorized")).reason == "AuthenticationFailed"
    assert classify(ServiceRequestError("connection refused")).reason == "StoreUnavailable"
    assert classify(TimeoutError("gave up", [ServiceRequestError("refused"), ClientAuthenticationError("no")])).reason == (
        "AuthenticationFailed")
    assert classify(ValueError("Either a credential to Key Vault ... must be set")).reason == "KeyVaultReferenceFailed"


def test_credentials_are_scrubbed() -> None:
    text = "Endpoint=https://x;Id=abc;Secret=c2VjcmV0 Authorization: Bearer eyJ.abc.def Signature=xyz&"
    cleaned = scrub(text)
    assert "c2VjcmV0" not in cleaned and "eyJ.abc.def" not in cleaned and "xyz" not in cleaned


def test_secret_references_are_split_out_including_their_untrimmed_form() -> None:
    references = SecretReferences(("app:",))
    reference = SecretReferenceConfigurationSetting(key="app:db:password", secret_id="https://kv/secrets/db")
    asyncio.run(references.mapper(reference))
    asyncio.run(references.mapper(ConfigurationSetting(key="app:db:host", value="h")))
    references.settle()
    loaded = {"db:host": "h", "db:password": "stale", "app:db:password": "fresh"}
    plain, secrets = references.split(loaded)
    assert plain == {"db:host": "h"}
    assert secrets == {"db:password": "fresh"}


def test_a_refresh_without_a_reload_keeps_what_was_known() -> None:
    references = SecretReferences(())
    asyncio.run(references.mapper(SecretReferenceConfigurationSetting(key="pw", secret_id="https://kv/secrets/pw")))
    references.settle()
    references.discard()
    references.settle()  # the mapper saw nothing: no settings were reloaded
    assert references.keys == {"pw": "pw"}
