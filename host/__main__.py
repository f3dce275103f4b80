"""Command line of the host scripts (run from the project directory with `python -m host`).

    python -m host checkout --url URL --commit SHA --cache-dir DIR [--require PATH]...
    python -m host checkout --path DIR [--require PATH]...
    python -m host builder ensure --spec JSON --owner STACK
    python -m host builder remove --name NAME [--owner STACK]
    python -m host registry ensure --address 127.0.0.1:PORT --data-dir DIR [--image IMAGE]
    python -m host registry remove --address 127.0.0.1:PORT --data-dir DIR

Parsed by `host.contract.parse_request`. Prints one JSON object (a `host.contract` result) on
stdout and exits 0; on failure prints one error on stderr and exits 2, having changed nothing it
could not finish.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from host import builder, checkout, registry
from host.contract import (
    BuilderEnsureRequest,
    BuilderResult,
    CheckoutRequest,
    CheckoutResult,
    RegistryEnsureRequest,
    RegistryRemoval,
    RegistryRemoveRequest,
    RegistryResult,
    parse_request,
)
from host.process import HostError


def main(argv: Sequence[str] | None = None) -> int:
    request = parse_request(sys.argv[1:] if argv is None else argv, argparse.ArgumentParser)
    result: CheckoutResult | BuilderResult | RegistryResult | RegistryRemoval
    try:
        if isinstance(request, CheckoutRequest):
            result = _checkout(request)
        elif isinstance(request, RegistryEnsureRequest):
            address = registry.LoopbackAddress.parse(request.address)
            result = registry.ensure(address, Path(request.data_dir), request.image)
        elif isinstance(request, RegistryRemoveRequest):
            address = registry.LoopbackAddress.parse(request.address)
            result = registry.remove(address, Path(request.data_dir))
        elif isinstance(request, BuilderEnsureRequest):
            result = builder.ensure(builder.BuilderSpec.from_json(request.spec), request.owner)
        else:
            result = builder.remove(request.name, request.owner)
    except HostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.to_json())
    return 0


def _checkout(request: CheckoutRequest) -> CheckoutResult:
    if request.path is not None:
        return checkout.use_existing_checkout(Path(request.path), request.require)
    # parse_request refuses --url without --commit and --cache-dir.
    assert request.url and request.commit and request.cache_dir
    return checkout.ensure_git_checkout(
        request.url, request.commit, Path(request.cache_dir), request.require
    )


if __name__ == "__main__":
    sys.exit(main())
