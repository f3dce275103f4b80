"""What one layer yields for the SBOM while the deep pass reads its tar stream anyway.

:class:`LayerCapture` is handed every tar member by :func:`verify.tarscan.scan_tar`. It keeps:

- every non-directory path, every whiteout and every opaque directory, so that
  :mod:`verify.sbom.overlay` can tell which captured file survives in the final filesystem;
- the bytes of package metadata files (dpkg, apk, Python, Node, .NET, chisel, os-release), each
  at most :data:`METADATA_MAX_BYTES`;
- the ``pom.properties`` inside each jar (a jar of at most :data:`JAR_MAX_BYTES` is read whole,
  since a zip's directory is at its end; larger jars are noted and skipped);
- what :class:`verify.sbom.binaries.BinaryReader` finds in ELF files.

Nothing here depends on the platform: a layer shared by several platforms is captured once.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from verify.sbom.binaries import BinaryFindings, BinaryReader, MemberContent

METADATA_MAX_BYTES = 16 << 20
JAR_MAX_BYTES = 64 << 20
POM_MAX_BYTES = 64 << 10
OPAQUE_MARKER = ".wh..wh..opq"
WHITEOUT_PREFIX = ".wh."

_EXACT_FILES = frozenset(
    {
        "/var/lib/dpkg/status",
        "/lib/apk/db/installed",
        "/etc/os-release",
        "/usr/lib/os-release",
        "/var/lib/chisel/manifest.wall",
    }
)


def is_metadata(path: str) -> bool:
    """True for the package metadata files the inventory sources read."""
    if path in _EXACT_FILES:
        return True
    directory, _, name = path.rpartition("/")
    if directory == "/var/lib/dpkg/status.d":
        return True
    if directory == "/var/lib/dpkg/info":
        return name.endswith(".list")
    if name in ("METADATA", "RECORD"):
        return directory.endswith(".dist-info")
    if name == "package.json":
        parent = directory.rpartition("/")[0]
        return parent.endswith("/node_modules") or (
            parent.rpartition("/")[2].startswith("@")
            and parent.rpartition("/")[0].endswith("/node_modules")
        )
    return name.endswith(".deps.json")


@dataclass
class LayerInventory:
    """The SBOM-relevant content of one layer."""

    paths: set[str] = field(default_factory=set)
    """Every non-directory entry (it hides the same path, and anything below, in lower layers)."""
    whiteouts: set[str] = field(default_factory=set)
    """Paths this layer deletes from the layers below (with everything below them)."""
    opaque: set[str] = field(default_factory=set)
    """Directories whose content from the layers below this layer hides."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Captured metadata files."""
    poms: dict[str, tuple[tuple[str, bytes], ...]] = field(default_factory=dict)
    """Jar path -> its ``pom.properties`` members (name, bytes)."""
    binaries: dict[str, BinaryFindings] = field(default_factory=dict)
    """ELF path -> what its bytes revealed (only files where something was found)."""
    notes: list[str] = field(default_factory=list)
    """Files that could not be read within the bounds (reported in the document)."""


class LayerCapture:
    """Collects a :class:`LayerInventory` from the members of one tar stream."""

    def __init__(self) -> None:
        self.inventory = LayerInventory()

    def member(self, path: str, is_dir: bool) -> None:
        """Any entry: record whiteouts, opaque directories and non-directory paths."""
        directory, _, name = path.rpartition("/")
        if name == OPAQUE_MARKER:
            self.inventory.opaque.add(directory or "/")
        elif name.startswith(WHITEOUT_PREFIX):
            self.inventory.whiteouts.add(f"{directory}/{name[len(WHITEOUT_PREFIX) :]}")
        elif not is_dir:
            self.inventory.paths.add(path)

    def regular(
        self, size: int, path: str, header: bytes, elf: bool, content: MemberContent
    ) -> None:
        """A regular file whose first bytes (``header``) were read already."""
        if elf:
            findings = BinaryReader(size).read(content, header)
            if findings.go or findings.deps_json or findings.problems:
                self.inventory.binaries[path] = findings
        elif path.endswith(".jar"):
            self._jar(size, path, header, content)
        elif is_metadata(path):
            if size > METADATA_MAX_BYTES:
                self.inventory.notes.append(
                    f"{path}: {size} bytes, over the {METADATA_MAX_BYTES}-byte bound"
                )
                return
            self.inventory.files[path] = header + content.read()

    def _jar(self, size: int, path: str, header: bytes, content: MemberContent) -> None:
        if size > JAR_MAX_BYTES:
            self.inventory.notes.append(
                f"{path}: a {size}-byte jar, over the {JAR_MAX_BYTES}-byte bound"
            )
            return
        try:
            with zipfile.ZipFile(io.BytesIO(header + content.read())) as jar:
                poms = tuple(
                    (info.filename, jar.read(info))
                    for info in jar.infolist()
                    if info.filename.startswith("META-INF/maven/")
                    and info.filename.endswith("/pom.properties")
                    and info.file_size <= POM_MAX_BYTES
                )
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
            self.inventory.notes.append(f"{path}: not a readable jar ({error})")
            return
        if poms:
            self.inventory.poms[path] = poms
