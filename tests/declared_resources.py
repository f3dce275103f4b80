"""Dump what the program declares under mocks for every committed stack file, as JSON.

A refactoring must leave this dump unchanged: run it before and after and compare.

    .venv/bin/python -m tests.declared_resources > before.json
    ... change the code ...
    .venv/bin/python -m tests.declared_resources | diff before.json -

Each registration is dumped with its URN (type and name), options, dependencies and inputs
(secrets stay wrapped, so a value that stops being secret shows), and each invoke with its
arguments. Some stacks are also dumped with other config (`VARIANTS`).
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.program_mocks import PROJECT, ROOT, evaluate_program, stack_config

KMS_KEY_VERSION = (
    "projects/shop-123/locations/europe-west1/keyRings/ci/cryptoKeys/attest/cryptoKeyVersions/2"
)

VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "dev": ("dev", {}),
    "dev-perPlatform": ("dev", {f"{PROJECT}:strategy": "perPlatform"}),
    "local": ("local", {}),
    "prod": ("prod", {}),
    "dev-binaryAuthorization": (
        "dev",
        {f"{PROJECT}:attest": {"binaryAuthorization": True, "enforce": True}},
    ),
    "dev-perPlatform-kms": (
        "dev",
        {f"{PROJECT}:strategy": "perPlatform", f"{PROJECT}:attest": {"kms": KMS_KEY_VERSION}},
    ),
    "local-perPlatform": ("local", {f"{PROJECT}:strategy": "perPlatform"}),
}
"""Name: (stack file, config overrides). Besides the committed stack files as they are, the
variants that switch on what they leave off: the other strategy, Binary Authorization and
referrers signed by Cloud KMS."""


def declared(stack: str, overrides: dict[str, object]) -> dict[str, Any]:
    """The registrations and invokes of one evaluation of the program."""
    run = evaluate_program({**stack_config(stack), **overrides})
    return {
        "registrations": [
            {
                "urn": registration.urn,
                "custom": registration.custom,
                "parent": registration.parent,
                "protect": registration.protect,
                "deleteBeforeReplace": registration.delete_before_replace,
                "retainOnDelete": registration.retain_on_delete,
                "dependencies": registration.dependencies,
                "propertyDependencies": registration.property_dependencies,
                "inputs": registration.inputs,
            }
            for registration in sorted(run.registrations, key=lambda r: r.urn)
        ],
        "invokes": sorted(
            (json.dumps([invocation.token, invocation.args], sort_keys=True, default=str))
            for invocation in run.monitor.invocations
        ),
        "outputs": sorted(run.outputs),
    }


def main() -> None:
    os.chdir(ROOT)
    dump = {name: declared(stack, overrides) for name, (stack, overrides) in VARIANTS.items()}
    json.dump(dump, sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
