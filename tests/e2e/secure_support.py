"""The emulator as Azure looks to an AKS pod: HTTPS, an Entra ID token issuer and a Key Vault, in one process.

The `secure` fixture (tests/e2e/conftest.py) starts it. The operator is told
to trust the emulator's CA with `--ca-file` (see `Secure.operator_args`); the tests' own SDK clients pass
`connection_verify`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from azure.appconfiguration import AzureAppConfigurationClient

from appconfig_sync.emulator.identity import TokenIssuer
from appconfig_sync.emulator.keyvault import SecretVault
from appconfig_sync.emulator.server import EmulatorServer

# Client IDs are GUIDs: the CRD accepts nothing else.
SP_ID, SP_SECRET = "11111111-0000-4000-8000-000000000001", "sp-secret-value-e2e"
WI_ID = "22222222-0000-4000-8000-000000000001"  # the operator pod's AZURE_CLIENT_ID
WI_OTHER_ID = "22222222-0000-4000-8000-000000000002"  # a per-object clientId trusting the same token
WI_UNTRUSTING_ID = "22222222-0000-4000-8000-000000000003"  # federated with another ServiceAccount only
MI_ID = "33333333-0000-4000-8000-000000000001"  # a user-assigned managed identity
KV_REF_CONTENT_TYPE = "application/vnd.microsoft.appconfig.keyvaultref+json;charset=utf-8"


@dataclass
class Secure:
    server: EmulatorServer
    issuer: TokenIssuer
    vault: SecretVault
    ca: str
    store: AzureAppConfigurationClient  # what a user's `az appconfig kv set` does, over TLS

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def operator_args(self, *extra: str) -> tuple[str, ...]:
        return ("--ca-file", self.ca, *extra)

    def authority_env(self) -> dict[str, str]:
        """What the client-secret and workload-identity flows need to find this Entra ID."""
        return {"AZURE_AUTHORITY_HOST": self.endpoint}

    def reference(self, secret: str) -> str:
        """A Key Vault reference's value, pointing at a secret of this emulator's vault."""
        return json.dumps({"uri": f"{self.endpoint}/secrets/{secret}"})


def leaks(value: str, *texts: Any) -> list[str]:
    """Which of `texts` (strings or JSON-able objects) hold `value`, as is or base64-encoded."""
    forms = {value, base64.b64encode(value.encode()).decode()}
    found = []
    for text in texts:
        blob = text if isinstance(text, str) else json.dumps(text, default=str)
        if any(form in blob for form in forms):
            found.append(blob[:200])
    return found
