"""The verification itself: an image's index, each required platform, and (``--deep``) its layers.

Work runs on three thread pools, so nothing waits on a task queued behind itself: images, then
platforms, then layers. Threads suffice: socket reads, sha256, ISA-L and zstd release the GIL.
Layers are content-addressed, so a layer shared by several platforms or images is downloaded and
scanned once per run; its scan is platform-independent and each platform judges it separately.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from verify.auth import AuthError
from verify.digests import (
    DigestingReader,
    DigestMismatch,
    Readable,
    SizeMismatch,
    check_bytes,
    sha256_digest,
)
from verify.elf import PLATFORM_MACHINES, machine_name
from verify.layers import CHUNK_BYTES, LayerFormatError, decompressed
from verify.manifests import (
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    Descriptor,
    ImageConfig,
    ImageManifest,
    Index,
    ManifestError,
    document_media_type,
    parse_config,
    parse_image_manifest,
    parse_index,
)
from verify.platforms import Platform
from verify.prefetch import PrefetchingReader
from verify.reference import Reference
from verify.registry import Document, RegistryClient, RegistryError, StreamError
from verify.sbom.capture import LayerCapture

if TYPE_CHECKING:
    from verify.sbom.inventory import Inventory
from verify.tarscan import DEFAULT_MAX_LAYER_BYTES, ElfFile, LayerScan, scan_tar

MISMATCHED_PATHS_REPORTED = 20
"""``mismatchedPaths`` (and the failure lines) list at most this many paths per platform."""

EXIT_VERIFIED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Options:
    """What to verify, shared by every image in a run."""

    platforms: tuple[Platform, ...]
    deep: bool
    allow: tuple[str, ...] = ()
    """Globs (fnmatch, ``*`` also crosses ``/``) of absolute paths whose ELF machine may differ."""
    sbom: bool = False
    """With ``deep``: also take each platform's inventory from the same pass (``--sbom``)."""
    max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES
    """Uncompressed bytes read from one layer at most (``--max-layer-bytes``)."""


@dataclass(frozen=True)
class Problem:
    """One reason an image is not verified, tied to the platforms it concerns."""

    platforms: str
    """``linux/arm64``, or a comma-separated list when the problem concerns several."""
    reason: str
    exit_code: int
    """1 for a verification failure, 2 for usage/auth/not-found/registry errors."""


@dataclass
class ElfReport:
    """The ``--deep`` outcome for one platform."""

    checked: int = 0
    """ELF files examined in this platform's layers."""
    mismatched: int = 0
    """ELF files for another machine whose paths match no ``--allow`` glob."""
    first_mismatches: list[ElfFile] = field(default_factory=list)
    """The first :data:`MISMATCHED_PATHS_REPORTED` of them, with their machines."""

    @property
    def mismatched_paths(self) -> list[str]:
        return [elf.path for elf in self.first_mismatches]


@dataclass
class PlatformResult:
    """What was found for one required platform."""

    digest: str
    config_architecture: str
    elf: ElfReport | None = None
    inventory: Inventory | None = None
    """The platform's SBOM inventory (``--sbom``), when all its layers were read."""


@dataclass
class ImageResult:
    """Everything known about one reference after verification."""

    ref: str
    digest: str | None = None
    media_type: str | None = None
    platforms: dict[str, PlatformResult] = field(default_factory=dict)
    attestations: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return max((problem.exit_code for problem in self.problems), default=EXIT_VERIFIED)


def normalize_allow_glob(pattern: str) -> str:
    """Make a glob absolute like the scanned paths (``usr/lib/*.so`` -> ``/usr/lib/*.so``)."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern if pattern.startswith(("/", "*")) else "/" + pattern


def is_allowed(path: str, globs: Sequence[str]) -> bool:
    """True when ``path`` matches one of the (normalised) ``--allow`` globs."""
    return any(fnmatch.fnmatchcase(path, glob) for glob in globs)


def _elf_name(elf: ElfFile) -> str:
    """The path of an ELF file, saying which file a hard link names too."""
    if elf.link_target is None:
        return elf.path
    return f"{elf.path} (a hard link to {elf.link_target})"


def _platform_list(platforms: Sequence[Platform]) -> str:
    return ", ".join(str(platform) for platform in platforms)


Checked = tuple[PlatformResult | None, list[Problem]]
"""What one platform's check yields: its result (when its config was read) and its problems."""


class _Fatal(Exception):
    """Stops an image's verification with a problem of exit code 2."""


class _Failed(Exception):
    """Stops an image's verification with a problem of exit code 1 (e.g. a size mismatch)."""


class _WithinDeadline:
    """A stream whose every read first checks the request's deadline (a small zstd blob may
    inflate for minutes without another byte from the network)."""

    def __init__(self, stream: Readable, check: Callable[[], None]) -> None:
        self._stream = stream
        self._check = check

    def read(self, size: int = -1, /) -> bytes:
        self._check()
        return self._stream.read(size)


class LayerScanner:
    """Scans each layer digest once per run, however many platforms or images share it."""

    def __init__(
        self,
        client: RegistryClient,
        pool: ThreadPoolExecutor,
        attempts: int,
        max_bytes: int,
        sbom: bool = False,
    ) -> None:
        self._client = client
        self._sbom = sbom
        self._pool = pool
        self._attempts = attempts
        self._max_bytes = max_bytes
        self._scans: dict[str, Future[LayerScan]] = {}
        self._lock = threading.Lock()

    def scan(self, ref: Reference, layer: Descriptor) -> Future[LayerScan]:
        """The (possibly shared, possibly running) scan of ``layer``."""
        with self._lock:
            if layer.digest not in self._scans:
                self._scans[layer.digest] = self._pool.submit(self._scan, ref, layer)
            return self._scans[layer.digest]

    def _scan(self, ref: Reference, layer: Descriptor) -> LayerScan:
        what = f"layer {layer.digest}"
        for attempt in range(self._attempts):
            try:
                with self._client.open_blob(ref, layer.digest, what, layer.size) as body:
                    digesting = DigestingReader(body, layer.digest, layer.size, what)
                    # Download and sha256 in a thread of their own, inflation in this one.
                    blob = PrefetchingReader(digesting, CHUNK_BYTES)
                    try:
                        try:
                            inflated = _WithinDeadline(decompressed(blob), body.check_deadline)
                            capture = LayerCapture() if self._sbom else None
                            scan = scan_tar(inflated, self._max_bytes, capture)
                        except LayerFormatError:
                            # Content that is not what its digest names explains a broken
                            # archive better: finish() raises DigestMismatch in that case.
                            blob.finish()
                            raise
                        blob.finish()
                        return scan
                    finally:
                        blob.close()
            except StreamError:
                # A download that broke off mid-stream restarts the whole layer from byte 0.
                if attempt + 1 == self._attempts:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")


class Verifier:
    """Verifies references concurrently with one registry client and one layer cache."""

    def __init__(self, client: RegistryClient, options: Options, layer_workers: int) -> None:
        self._client = client
        self._options = options
        self._allow = tuple(normalize_allow_glob(glob) for glob in options.allow)
        self._layer_pool = ThreadPoolExecutor(layer_workers, thread_name_prefix="layer")
        self._platform_pool = ThreadPoolExecutor(8, thread_name_prefix="platform")
        self._layers = LayerScanner(
            client,
            self._layer_pool,
            attempts=3,
            max_bytes=options.max_layer_bytes,
            sbom=options.sbom,
        )

    def verify_all(self, refs: Sequence[tuple[str, Reference]]) -> list[ImageResult]:
        """Verify each ``(as_written, parsed)`` reference; results keep the input order."""
        with ThreadPoolExecutor(min(8, max(1, len(refs))), thread_name_prefix="image") as images:
            futures = [images.submit(self.verify_image, text, ref) for text, ref in refs]
            results = [future.result() for future in futures]
        self._platform_pool.shutdown()
        self._layer_pool.shutdown()
        return results

    def verify_image(self, text: str, ref: Reference) -> ImageResult:
        """Verify one reference; every problem is recorded, none raised."""
        result = ImageResult(ref=text)
        everything = _platform_list(self._options.platforms)
        try:
            self._verify_top(ref, result)
        except _Fatal as fatal:
            result.problems.append(Problem(everything, str(fatal), EXIT_ERROR))
        except _Failed as failed:
            result.problems.append(Problem(everything, str(failed), EXIT_FAILED))
        return result

    def _verify_top(self, ref: Reference, result: ImageResult) -> None:
        everything = _platform_list(self._options.platforms)
        document = self._fetch_checked(
            lambda: self._client.get_manifest(ref, ref.manifest_reference), ref.digest
        )
        result.digest = sha256_digest(document.data)
        if ref.digest is None and document.docker_digest not in (None, result.digest):
            raise _Fatal(
                f"the registry says the manifest is {document.docker_digest}, "
                f"its content is {result.digest}"
            )
        try:
            result.media_type = document_media_type(document.data, document.content_type)
            if result.media_type in INDEX_TYPES:
                self._verify_index(ref, parse_index(document.data, result.media_type), result)
            elif result.media_type in IMAGE_MANIFEST_TYPES:
                manifest = parse_image_manifest(document.data, result.media_type)
                self._verify_single(ref, manifest, len(document.data), result)
            else:
                result.problems.append(
                    Problem(
                        everything,
                        f"media type {result.media_type!r} is neither an image index nor an "
                        "image manifest",
                        EXIT_FAILED,
                    )
                )
        except ManifestError as error:
            raise _Fatal(f"the manifest is malformed: {error}") from None

    def _verify_index(self, ref: Reference, index: Index, result: ImageResult) -> None:
        images = [entry for entry in index.manifests if not entry.is_attestation]
        result.attestations = len(index.manifests) - len(images)
        present = _platform_list([entry.platform for entry in images if entry.platform])
        checks: list[tuple[Platform, Future[Checked]]] = []
        for platform in self._options.platforms:
            matches = [entry for entry in images if entry.platform == platform]
            if not matches:
                reason = f"missing from the index (it lists: {present or 'no platforms'})"
                result.problems.append(Problem(str(platform), reason, EXIT_FAILED))
            elif len(matches) > 1:
                reason = f"listed {len(matches)} times in the index; expected exactly once"
                result.problems.append(Problem(str(platform), reason, EXIT_FAILED))
            else:
                future = self._platform_pool.submit(self._check_platform, ref, platform, matches[0])
                checks.append((platform, future))
        self._collect(checks, result)

    def _verify_single(
        self, ref: Reference, manifest: ImageManifest, size: int, result: ImageResult
    ) -> None:
        assert result.digest is not None
        config = self._fetch_config(ref, manifest)
        found = config.platform
        checks: list[tuple[Platform, Future[Checked]]] = []
        for platform in self._options.platforms:
            if platform == found and len(self._options.platforms) == 1:
                entry = Descriptor(manifest.media_type, result.digest, size, found, {})
                future = self._platform_pool.submit(self._check_platform, ref, platform, entry)
                checks.append((platform, future))
            elif len(self._options.platforms) == 1:
                reason = f"the reference is a single-platform image manifest for {found}"
                result.problems.append(Problem(str(platform), reason, EXIT_FAILED))
            else:
                reason = (
                    f"the reference is a single-platform image manifest ({found}), not an "
                    f"index of {_platform_list(self._options.platforms)}"
                )
                result.problems.append(Problem(str(platform), reason, EXIT_FAILED))
        self._collect(checks, result)

    def _collect(
        self,
        checks: list[tuple[Platform, Future[Checked]]],
        result: ImageResult,
    ) -> None:
        for platform, future in checks:
            outcome, problems = future.result()
            result.problems.extend(problems)
            if outcome is None:
                continue
            result.platforms[str(platform)] = outcome
            if outcome.elf is not None and outcome.elf.mismatched:
                result.problems.extend(self._elf_problems(platform, outcome.elf))

    def _check_platform(self, ref: Reference, platform: Platform, entry: Descriptor) -> Checked:
        """Fetch one platform's manifest and config, cross-check them, scan layers if deep.

        The result is reported whenever the config could be read, also next to a problem: the
        JSON then shows, e.g., the architecture a mislabelled config really declares.
        """
        try:
            document = self._fetch_checked(
                lambda: self._client.get_manifest(ref, entry.digest, entry.size), entry.digest
            )
            media_type = document_media_type(document.data, document.content_type)
            if media_type not in IMAGE_MANIFEST_TYPES:
                reason = f"{entry.digest} has media type {media_type!r}, not an image manifest"
                return None, [Problem(str(platform), reason, EXIT_FAILED)]
            manifest = parse_image_manifest(document.data, media_type)
            config = self._fetch_config(ref, manifest)
        except ManifestError as error:
            return None, [Problem(str(platform), f"manifest {entry.digest}: {error}", EXIT_ERROR)]
        except _Fatal as fatal:
            return None, [Problem(str(platform), str(fatal), EXIT_ERROR)]
        except _Failed as failed:
            return None, [Problem(str(platform), str(failed), EXIT_FAILED)]
        outcome = PlatformResult(digest=entry.digest, config_architecture=config.architecture)
        declared_variant = entry.platform.variant if entry.platform else None
        found = Platform.of(config.os, config.architecture, config.variant or declared_variant)
        if found != platform:
            reason = f"the index entry says {platform} but its image config says {found}"
            return outcome, [Problem(str(platform), reason, EXIT_FAILED)]
        if self._options.deep:
            try:
                outcome.elf = self._check_layers(ref, platform, manifest)
            except LayerFormatError as error:
                return outcome, [Problem(str(platform), str(error), EXIT_FAILED)]
            except _Fatal as fatal:
                return outcome, [Problem(str(platform), str(fatal), EXIT_ERROR)]
            if self._options.sbom:
                outcome.inventory = self._inventory(ref, platform, entry.digest, manifest)
        return outcome, []

    def _inventory(
        self, ref: Reference, platform: Platform, digest: str, manifest: ImageManifest
    ) -> Inventory:
        """The SBOM inventory from the layer scans just checked (finished, cached)."""
        from verify.sbom.inventory import platform_inventory  # its libraries load with --sbom

        scans = [self._layers.scan(ref, layer).result() for layer in manifest.layers]
        return platform_inventory(scans, platform, digest)

    def _check_layers(
        self, ref: Reference, platform: Platform, manifest: ImageManifest
    ) -> ElfReport:
        expected = PLATFORM_MACHINES[platform.architecture]
        scans = [(layer, self._layers.scan(ref, layer)) for layer in manifest.layers]
        report = ElfReport()
        # ELF files of the layers below, by path: what a hard link in a layer above may name.
        lower: dict[str, int] = {}
        for layer, future in scans:
            try:
                scan = future.result()
            except LayerFormatError as error:
                raise LayerFormatError(f"layer {layer.digest}: {error}") from None
            except SizeMismatch as error:
                raise LayerFormatError(str(error)) from None
            except (RegistryError, AuthError, DigestMismatch) as error:
                raise _Fatal(str(error)) from None
            linked = [
                ElfFile(link.path, lower[link.target], link_target=link.target)
                for link in scan.hard_links
                if link.target in lower
            ]
            for elf in (*scan.elf_files, *linked):
                lower[elf.path] = elf.machine
                report.checked += 1
                if elf.machine == expected or is_allowed(elf.path, self._allow):
                    continue
                report.mismatched += 1
                if len(report.first_mismatches) < MISMATCHED_PATHS_REPORTED:
                    report.first_mismatches.append(elf)
        return report

    @staticmethod
    def _elf_problems(platform: Platform, report: ElfReport) -> list[Problem]:
        expected = machine_name(PLATFORM_MACHINES[platform.architecture])
        problems = [
            Problem(
                str(platform),
                f"{_elf_name(elf)} is an ELF binary for {machine_name(elf.machine)}, "
                f"expected {expected}",
                EXIT_FAILED,
            )
            for elf in report.first_mismatches
        ]
        if report.mismatched > len(report.first_mismatches):
            more = report.mismatched - len(report.first_mismatches)
            reason = f"... and {more} more ELF files not for {expected}"
            problems.append(Problem(str(platform), reason, EXIT_FAILED))
        return problems

    def _fetch_checked(self, fetch: Callable[[], Document], digest: str | None) -> Document:
        """Run a registry read; check its content against ``digest`` when one is known."""
        try:
            document = fetch()
            if digest is not None:
                check_bytes("manifest", document.data, digest)
        except (RegistryError, AuthError, DigestMismatch) as error:
            raise _Fatal(str(error)) from None
        except SizeMismatch as error:
            raise _Failed(str(error)) from None
        return document

    def _fetch_config(self, ref: Reference, manifest: ImageManifest) -> ImageConfig:
        """Fetch, digest-check and parse an image config."""
        digest = manifest.config.digest
        try:
            document = self._client.get_blob(ref, digest, f"config {digest}", manifest.config.size)
            check_bytes(f"config {digest}", document.data, digest)
        except (RegistryError, AuthError, DigestMismatch) as error:
            raise _Fatal(str(error)) from None
        except SizeMismatch as error:
            raise _Failed(str(error)) from None
        return parse_config(document.data)
