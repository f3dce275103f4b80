"""Whole-program evaluation under Pulumi mocks: the engine and providers are mocked, nothing else.

`BoutiqueMocks` answers like the providers would: Artifact Registry's `registryUri`, a distinct
digest per Image (so cross-wired outputs show), an Index's `ref` (a single source index is
copied as it is, as `imagetools create` does), the access token of `getClientConfig`, and for
`command:local:run` / `local.Command` what the tools print: each command line is parsed with
the tool's contract (`host.contract`, `patches.contract`, `verify.contract`: the parsers the
tools' CLIs use) and answered with its result types: the host scripts' JSON, `python -m patches
apply --json` (the real patch ids of `patches/upstream.toml`) and `python -m verify` (`--json`,
`published`, `binauthz`). The tools themselves run for real in their own tests and in
tests/integration/.

`tests.recorder` (the one module touching SDK internals) records every registration request and
runs the program to its end; its `Registration`, `Invocation`, `is_secret` and `unwrap` are
re-exported here for the program tests. No pytest import: benchmarks/program.py uses this
module too.
"""

import hashlib
import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from host.contract import (
    BuilderEnsureRequest,
    BuilderResult,
    CheckoutRequest,
    CheckoutResult,
    RegistryEnsureRequest,
    RegistryResult,
)
from host.contract import parse_request as parse_host_request
from patches.contract import PatchedFile, PatchReport, PatchRequest
from patches.definitions import load
from patches.engine import PATCHED, UNTOUCHED
from plan.services import CATALOG
from plan.settings import UPSTREAM_COMMIT
from plan.tools import tool_argv
from tests.recorder import Invocation as Invocation
from tests.recorder import RecordingMonitor, root_outputs, run_to_completion, use_mocks
from tests.recorder import Registration as Registration
from tests.recorder import is_secret as is_secret
from tests.recorder import unwrap as unwrap
from verify.contract import (
    AttestIndexRequest,
    AttestIndexResult,
    BinauthzRequest,
    BinauthzResult,
    ElfSummary,
    ImageReport,
    PlatformReport,
    PublishedRequest,
    PublishedResult,
    RunSummary,
)
from verify.contract import parse_request as parse_verify_request

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "boutique-multiarch"
STACK = "dev"
MOCK_ACCESS_TOKEN = "ya29.mock-access-token"
MOCK_RUN_SECONDS = 2.5
"""How long the mocked `verify --run` says each probe took."""
PATH_CHECKOUT_HEAD = "a" * 40
"""HEAD the mocked `host checkout --path` reports."""

IMAGE = "docker-build:index:Image"
INDEX = "docker-build:index:Index"
COMMAND = "command:local:Command"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
IAM_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
"""Resource types the program declares."""
REGISTRY = "europe-west1-docker.pkg.dev/boutique-dev-123456/online-boutique"
"""The registry path of the dev stack's repository, as the mocks answer it."""


def host_stdout(arguments: list[str]) -> str:
    """What `python -m host ...` prints for these arguments (`host.contract`)."""
    request = parse_host_request(arguments)
    if isinstance(request, CheckoutRequest):
        if request.path is not None:
            return CheckoutResult(request.path, PATH_CHECKOUT_HEAD, None, "reused").to_json()
        checkout = f"{request.cache_dir}/{request.commit}"
        return CheckoutResult(checkout, request.commit, request.url, "cloned").to_json()
    if isinstance(request, BuilderEnsureRequest):
        return BuilderResult(json.loads(request.spec)["name"], "created").to_json()
    if isinstance(request, RegistryEnsureRequest):
        return RegistryResult(request.address, 4242, None, True).to_json()
    raise AssertionError(f"unexpected host command {arguments!r}")


class PatchToolError(RuntimeError):
    """The patch tool exits 2; pulumi-command's run fails the invoke with its stderr."""


def patches_stdout(arguments: list[str], patch_ids: Mapping[str, str | None]) -> str:
    """What `python -m patches apply --json [--revision R] --service S... -- ROOT` prints on a
    pristine checkout: the real definitions' paths and patch ids. `patch_ids` overrides some; a
    test of a made-up upstream (no patch set) gives one for every service, else the tool
    refuses the revision as the real one does."""
    request = PatchRequest.from_argv(arguments)
    assert request.command == "apply" and request.json, arguments
    commit = request.revision or UPSTREAM_COMMIT
    revision = load().revision(commit)
    if revision is None and not set(request.services) <= set(patch_ids):
        raise PatchToolError(f"patches apply: --revision {commit!r} is not a supported upstream")
    files = []
    for service in request.services:
        definition = None if revision is None else revision.file(service)
        patch_id = patch_ids.get(service, None if definition is None else definition.patch_id)
        path = CATALOG[service].dockerfile if definition is None else definition.path
        files.append(PatchedFile(service, path, PATCHED if patch_id else UNTOUCHED, patch_id))
    return PatchReport(commit, tuple(files)).to_json() + "\n"


MOCK_KMS_PUBLIC_KEY_PEM = "-----BEGIN PUBLIC KEY-----\nmock\n-----END PUBLIC KEY-----\n"
"""What the mocked `getKMSCryptoKeyVersion` returns as the key version's public key."""


def verify_stdout(arguments: list[str]) -> str:
    """What `python -m verify --json [--deep] --platform P... [--run --probe P [--skip-run P]...]
    [--attest ...] -- REF` prints for a verified image: a distinct manifest digest per (image,
    platform), two attestations skipped, each started platform's probe passed; what
    `python -m verify binauthz REF@DIGEST ... --json` prints (a new occurrence); and what
    `python -m verify attest-index REF@DIGEST ... --json` prints (the referrer pushed); and what
    `python -m verify published REF ...` prints when the registry is as exported (the digest
    the ref names; none for --immutable)."""
    request = parse_verify_request(arguments)
    if isinstance(request, BinauthzRequest):
        occurrence = f"projects/shop-123/occurrences/{digest_of(request.ref)[7:19]}"
        return BinauthzResult(occurrence, created=True).to_json() + "\n"
    if isinstance(request, AttestIndexRequest):
        referrer = digest_of(f"{request.ref} index attestation")
        return AttestIndexResult(index=referrer).to_json() + "\n"
    if isinstance(request, PublishedRequest):
        return PublishedResult(request.ref, request.ref.rpartition("@")[2] or None).to_json()
    (ref,) = request.refs
    ran = RunSummary(
        ok=True, probe=request.probe or "", seconds=MOCK_RUN_SECONDS, exit_code=None, log_tail=()
    )
    started = set(request.platforms) - set(request.skip_run) if request.run else set()
    platforms = {
        platform: PlatformReport(
            digest=digest_of(f"{ref} {platform}"),
            config_architecture=platform.split("/")[1],
            elf=ElfSummary(checked=7, mismatched=0, mismatched_paths=()) if request.deep else None,
            run=ran if platform in started else None,
        )
        for platform in request.platforms
    }
    referrers = None
    if request.attest:
        subjects = ["index", *platforms]
        referrers = {subject: digest_of(f"{ref} {subject} attestation") for subject in subjects}
    report = ImageReport(
        ref=ref,
        digest=ref.rpartition("@")[2],
        media_type="application/vnd.oci.image.index.v1+json",
        platforms=platforms,
        attestations=len(platforms),
        referrers=referrers,
    )
    return report.to_json() + "\n"


def digest_of(name: str) -> str:
    """The mocked digest of the Image resource called `name` (distinct per resource)."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class BoutiqueMocks(pulumi.runtime.Mocks):
    """Provider behaviour the program relies on, nothing more."""

    def __init__(
        self,
        gcp_project: str | None,
        patch_ids: Mapping[str, str | None] | None = None,
        patch_failure: str | None = None,
        preview: bool = False,
    ) -> None:
        self.gcp_project = gcp_project
        self.preview = preview
        """A preview of a first run: Images, Indexes and Commands are new, so what they
        compute (digests, refs, stdout) is unknown."""
        self.patch_ids = dict(patch_ids or {})
        """Patch ids the mocked patch tool reports instead of the real definitions' ones."""
        self.patch_failure = patch_failure
        """When set, the patch tool fails (exit 2) with this message, as on drift."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if self.preview and args.typ in (IMAGE, INDEX, COMMAND):
            return f"{args.name}-id", outputs
        if args.typ == "gcp:artifactregistry/repository:Repository":
            project = outputs.setdefault("project", self.gcp_project)
            outputs["name"] = outputs["repositoryId"]
            outputs["registryUri"] = (
                f"{outputs['location']}-docker.pkg.dev/{project}/{outputs['repositoryId']}"
            )
        elif args.typ == "docker-build:index:Image":
            outputs["digest"] = digest_of(args.name)
            (export,) = outputs["exports"]
            outputs["ref"] = f"{export['registry']['names'][0]}@{outputs['digest']}"
        elif args.typ == "docker-build:index:Index":
            sources = outputs["sources"]
            digest = (
                sources[0].rpartition("@")[2] if len(sources) == 1 else digest_of(" ".join(sources))
            )
            outputs["ref"] = f"{outputs['tag']}@{digest}"
        elif args.typ == "command:local:Command":
            outputs["stdout"] = self.stdout(outputs["create"])
            outputs["stderr"] = ""
        return f"{args.name}-id", outputs

    def stdout(self, command_line: str) -> str:
        """What a command line the program runs prints: its requests are parsed by the tools'
        contracts, its results written with their result types."""
        patches = tool_argv(command_line, "patches")
        if patches is not None:
            return patches_stdout(patches, self.patch_ids)
        verify = tool_argv(command_line, "verify")
        if verify is not None:
            return verify_stdout(verify)
        host = tool_argv(command_line, "host")
        if host is None:
            raise AssertionError(f"unexpected command {command_line!r}")
        return host_stdout(host)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "command:local:run":
            line = args.args["command"]
            try:
                if self.patch_failure and tool_argv(line, "patches") is not None:
                    raise PatchToolError(self.patch_failure)
                return {"stdout": self.stdout(line), "stderr": ""}, []
            except PatchToolError as error:
                # What pulumi-command's run reports for a command that exits non-zero.
                raise RuntimeError(f"exit status 2: running {line!r}: {error}") from error
        if args.token == "gcp:kms/getKMSCryptoKeyVersion:getKMSCryptoKeyVersion":
            crypto_key = args.args["cryptoKey"]
            return {
                "id": f"{crypto_key}/cryptoKeyVersions/1",
                "name": f"{crypto_key}/cryptoKeyVersions/1",
                "cryptoKey": crypto_key,
                "version": 1,
                "algorithm": "EC_SIGN_P256_SHA256",
                "publicKeys": [
                    {"algorithm": "EC_SIGN_P256_SHA256", "pem": MOCK_KMS_PUBLIC_KEY_PEM}
                ],
            }, []
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {
                "accessToken": MOCK_ACCESS_TOKEN,
                "project": self.gcp_project,
                "id": "client-config",
            }, []
        raise AssertionError(f"unexpected invoke {args.token}")


@dataclass
class ProgramRun:
    """One evaluation of `__main__.py`."""

    monitor: RecordingMonitor
    namespace: dict[str, Any] = field(default_factory=dict)
    """The program's module globals (its components)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """The exported stack outputs (Outputs)."""

    @property
    def registrations(self) -> list[Registration]:
        return self.monitor.registrations

    @property
    def custom(self) -> list[Registration]:
        """Custom resources only (components excluded)."""
        return [registration for registration in self.registrations if registration.custom]

    def of_type(self, type_: str) -> list[Registration]:
        return [registration for registration in self.registrations if registration.type == type_]

    def named(self, name: str) -> Registration:
        (registration,) = [r for r in self.registrations if r.name == name]
        return registration


def config_values(config: Mapping[str, object]) -> dict[str, str]:
    """Config as Pulumi hands it to a program: strings, with arrays and objects as JSON."""
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()
    }


def new_monitor(
    config: Mapping[str, object],
    patch_ids: Mapping[str, str | None] | None = None,
    patch_failure: str | None = None,
    preview: bool = False,
) -> RecordingMonitor:
    """A recording monitor whose mocks answer for the configured GCP project."""
    project = config.get("gcp:project")
    gcp_project = project if isinstance(project, str) else None
    return RecordingMonitor(BoutiqueMocks(gcp_project, patch_ids, patch_failure, preview))


def start_program(
    config: Mapping[str, object],
    secrets: Mapping[str, str] | None = None,
    monitor: RecordingMonitor | None = None,
) -> ProgramRun:
    """Set fresh mocks and config, then run `__main__.py` (its RPCs may still be in flight)."""
    monitor = monitor or new_monitor(config)
    secret_values = dict(secrets or {})
    preview = isinstance(monitor.mocks, BoutiqueMocks) and monitor.mocks.preview
    use_mocks(monitor.mocks, PROJECT, STACK, monitor, preview=preview)
    pulumi.runtime.set_all_config({**config_values(config), **secret_values}, list(secret_values))
    run = ProgramRun(monitor)
    run.namespace.update(runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))
    run.outputs.update(root_outputs())
    return run


def evaluate_program(
    config: Mapping[str, object],
    secrets: Mapping[str, str] | None = None,
    monitor: RecordingMonitor | None = None,
) -> ProgramRun:
    """Run `__main__.py` to completion: every registration request has been recorded."""
    runs: list[ProgramRun] = []
    run_to_completion(lambda: runs.append(start_program(config, secrets, monitor)))
    return runs[0]


class ProgramRunner:
    """Evaluates the whole program; keeps the last monitor so failed runs can be inspected."""

    def __init__(self) -> None:
        self.monitor: RecordingMonitor | None = None

    def __call__(
        self,
        config: Mapping[str, object],
        secrets: Mapping[str, str] | None = None,
        patch_ids: Mapping[str, str | None] | None = None,
        patch_failure: str | None = None,
        preview: bool = False,
    ) -> ProgramRun:
        self.monitor = new_monitor(config, patch_ids, patch_failure, preview)
        return evaluate_program(config, secrets, self.monitor)


DEV_CONFIG: dict[str, object] = {
    "gcp:project": "boutique-dev-123456",
    "gcp:region": "europe-west1",
    f"{PROJECT}:writers": ["serviceAccount:deployer@boutique-dev-123456.iam.gserviceaccount.com"],
    f"{PROJECT}:readers": ["serviceAccount:gke-nodes@boutique-dev-123456.iam.gserviceaccount.com"],
}
"""The minimal GCP configuration; `dev_stack_config()` reads the real Pulumi.dev.yaml."""


def stack_config(stack: str) -> dict[str, object]:
    """The `config:` of Pulumi.<stack>.yaml, as the program would receive it: the CLI adds the
    default of every key Pulumi.yaml declares that the stack leaves unset."""
    import yaml

    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    config = dict(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"])
    for key, declaration in declared.items():
        if "default" in declaration:
            config.setdefault(f"{PROJECT}:{key}", declaration["default"])
    return config


def longest_chain(registrations: list[Registration]) -> list[str]:
    """The longest chain of custom resources along dependencies and property dependencies.

    A dependency on a component stands for its custom descendants; components themselves are not
    links of a chain. Returns the URNs of the chain, first dependency first.
    """
    by_urn = {registration.urn: registration for registration in registrations}
    children: dict[str, list[str]] = {}
    for registration in registrations:
        children.setdefault(registration.parent, []).append(registration.urn)

    def customs(urn: str) -> set[str]:
        registration = by_urn.get(urn)
        if registration is None:
            return set()
        if registration.custom:
            return {urn}
        return set().union(*(customs(child) for child in children.get(urn, [])))

    chains: dict[str, list[str]] = {}

    def chain_to(urn: str) -> list[str]:
        if urn not in chains:
            registration = by_urn[urn]
            direct = set(registration.dependencies).union(
                *registration.property_dependencies.values()
            )
            upstream = set().union(*(customs(dependency) for dependency in direct))
            longest = max(
                (chain_to(dependency) for dependency in sorted(upstream)), key=len, default=[]
            )
            chains[urn] = [*longest, urn]
        return chains[urn]

    custom = [registration.urn for registration in registrations if registration.custom]
    return max((chain_to(urn) for urn in custom), key=len, default=[])
