"""Inventory sources: package metadata of the final filesystem turned into components.

Each source reads what :mod:`verify.sbom.capture` kept and :mod:`verify.sbom.overlay` let
survive, and yields :class:`Component` values with a purl (packageurl-python) and the files each
one owns (to attach ELF machines to them). Malformed metadata is reported, never fatal.
"""

from __future__ import annotations

import csv
import email.parser
import io
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import zstandard
from packageurl import PackageURL

from verify.sbom.gobuildinfo import BuildInfo
from verify.sbom.overlay import FinalView

if TYPE_CHECKING:
    from debian import deb822

CHISEL_MANIFEST = "/var/lib/chisel/manifest.wall"
CHISEL_MAX_BYTES = 64 << 20
"""Bound on the decompressed chisel manifest (a zstd bomb stops here)."""


@dataclass
class Component:
    """One piece of software found in the image."""

    ecosystem: str
    """The purl type: ``deb``, ``apk``, ``pypi``, ``npm``, ``golang``, ``maven``, ``nuget``."""
    name: str
    version: str
    purl: str
    source: str
    """The metadata file (or binary) it was read from."""
    files: set[str] = field(default_factory=set)
    """Absolute paths it owns."""
    directories: set[str] = field(default_factory=set)
    """Directories whose every file it owns (a Node package's directory)."""


@dataclass(frozen=True)
class Distro:
    """``/etc/os-release``: the purl namespace of OS packages and their ``distro`` qualifier."""

    id: str
    version_id: str

    @property
    def qualifier(self) -> dict[str, str]:
        if not self.id:
            return {}
        return {"distro": f"{self.id}-{self.version_id}" if self.version_id else self.id}


def _purl(
    kind: str,
    name: str,
    version: str,
    namespace: str | None = None,
    qualifiers: dict[str, str] | None = None,
) -> str:
    return PackageURL(
        type=kind,
        namespace=namespace,
        name=name,
        version=version or None,
        qualifiers=qualifiers or None,
    ).to_string()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def distro(view: FinalView) -> Distro:
    """The distribution named by os-release (``/etc`` wins over ``/usr/lib``)."""
    data = view.files.get("/etc/os-release") or view.files.get("/usr/lib/os-release") or b""
    values: dict[str, str] = {}
    for line in _text(data).splitlines():
        key, separator, value = line.partition("=")
        if separator:
            values[key.strip()] = value.strip().strip("\"'")
    return Distro(values.get("ID", ""), values.get("VERSION_ID", ""))


# Debian: dpkg's status database and distroless's status.d


def _paragraphs(data: bytes) -> list[deb822.Deb822]:
    """deb822 paragraphs of text decoded here, leniently: python-debian would otherwise guess
    encodings of invalid UTF-8 (logging on stderr) and may raise on it."""
    # Imported here: python-debian (with its changelog and charset modules) is about half the
    # import time of the SBOM, and only images with a dpkg database need it.
    from debian import deb822

    lines = _text(data).splitlines(keepends=True)
    return list(deb822.Deb822.iter_paragraphs(lines, use_apt_pkg=False))


def _deb(paragraph: deb822.Deb822, source: str, os: Distro) -> Component | None:
    name, version = paragraph.get("Package"), paragraph.get("Version")
    if not name or not version:
        return None
    qualifiers = dict(os.qualifier)
    if paragraph.get("Architecture"):
        qualifiers["arch"] = paragraph["Architecture"]
    purl = _purl("deb", name, version, os.id or "debian", qualifiers)
    return Component("deb", name, version, purl, source)


def dpkg(view: FinalView, os: Distro) -> list[Component]:
    """``/var/lib/dpkg/status`` (installed packages) with their ``info/*.list`` file lists."""
    data = view.files.get("/var/lib/dpkg/status")
    if data is None:
        return []
    found = []
    for paragraph in _paragraphs(data):
        if paragraph.get("Status", "install ok installed").split()[-1:] != ["installed"]:
            continue
        component = _deb(paragraph, "/var/lib/dpkg/status", os)
        if component is None:
            continue
        arch = paragraph.get("Architecture", "")
        for list_name in (f"{component.name}.list", f"{component.name}:{arch}.list"):
            listing = view.files.get(f"/var/lib/dpkg/info/{list_name}", b"")
            component.files |= {line for line in _text(listing).splitlines() if line}
        found.append(component)
    return found


def dpkg_status_d(view: FinalView, os: Distro) -> list[Component]:
    """Distroless's ``/var/lib/dpkg/status.d/<pkg>`` with ``<pkg>.md5sums`` file lists."""
    prefix = "/var/lib/dpkg/status.d/"
    found = []
    for path, data in sorted(view.files.items()):
        if not path.startswith(prefix) or path.endswith(".md5sums"):
            continue
        for paragraph in _paragraphs(data):
            component = _deb(paragraph, path, os)
            if component is None:
                continue
            sums = view.files.get(f"{path}.md5sums", b"")
            for line in _text(sums).splitlines():
                _, _, owned = line.partition("  ")
                if owned:
                    component.files.add("/" + owned.lstrip("/"))
            found.append(component)
    return found


# Alpine


def apk(view: FinalView, os: Distro) -> list[Component]:
    """``/lib/apk/db/installed``: blank-line separated records of ``X:value`` lines."""
    data = view.files.get("/lib/apk/db/installed")
    if data is None:
        return []
    found = []
    for record in _text(data).split("\n\n"):
        fields: dict[str, str] = {}
        files: set[str] = set()
        directory = ""
        for line in record.splitlines():
            key, separator, value = line.partition(":")
            if not separator or len(key) != 1:
                continue
            if key == "F":
                directory = value
            elif key == "R":
                files.add("/" + posixpath.join(directory, value).lstrip("/"))
            else:
                fields.setdefault(key, value)
        name, version = fields.get("P"), fields.get("V")
        if not name or not version:
            continue
        qualifiers = dict(os.qualifier)
        if fields.get("A"):
            qualifiers["arch"] = fields["A"]
        purl = _purl("apk", name, version, os.id or "alpine", qualifiers)
        component = Component("apk", name, version, purl, "/lib/apk/db/installed", files)
        found.append(component)
    return found


# Python


def python(view: FinalView) -> list[Component]:
    """``*.dist-info/METADATA`` (Name, Version) with the files listed in ``RECORD``."""
    found = []
    for path, data in sorted(view.files.items()):
        if not path.endswith(".dist-info/METADATA"):
            continue
        # Core metadata is UTF-8; parsing bytes would give a Header, not a str, for any other byte.
        headers = email.parser.HeaderParser().parsestr(_text(data))
        name, version = headers.get("Name"), headers.get("Version")
        if not name or not version:
            continue
        purl = _purl("pypi", name.lower().replace("_", "-"), version)
        component = Component("pypi", name, version, purl, path)
        dist_info = posixpath.dirname(path)
        site = posixpath.dirname(dist_info)
        record = view.files.get(f"{dist_info}/RECORD", b"")
        try:
            for row in csv.reader(io.StringIO(_text(record))):
                if row and row[0]:
                    component.files.add(posixpath.normpath(posixpath.join(site, row[0])))
        except csv.Error as error:
            view.notes.append(f"{dist_info}/RECORD: not CSV ({error})")
        found.append(component)
    return found


# Node


def npm(view: FinalView) -> list[Component]:
    """``node_modules/<name>/package.json`` and ``node_modules/@scope/<name>/package.json``."""
    found = []
    for path, data in sorted(view.files.items()):
        if not path.endswith("/package.json"):
            continue
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            view.notes.append(f"{path}: not JSON")
            continue
        if not isinstance(document, dict):
            continue
        name, version = document.get("name"), document.get("version")
        if not isinstance(name, str) or not isinstance(version, str) or not name:
            continue
        scope, _, bare = name.rpartition("/")
        purl = _purl("npm", bare, version, scope or None)
        component = Component("npm", name, version, purl, path)
        component.directories.add(posixpath.dirname(path))
        found.append(component)
    return found


# Go


def _go_module(path: str, version: str, binary: str) -> Component:
    namespace, _, name = path.rpartition("/")
    shown = "" if version == "(devel)" else version
    purl = _purl("golang", name, shown, namespace or None)
    return Component("golang", path, version, purl, binary)


def go(view: FinalView) -> list[Component]:
    """Modules in each Go binary's build information; the main module owns the binary."""
    found = []
    for binary, findings in sorted(view.binaries.items()):
        info: BuildInfo | None = findings.go
        if info is None:
            continue
        main = info.main
        owner = _go_module(main.path, main.version, binary) if main else None
        if owner is None and info.path:
            owner = _go_module(info.path, "(devel)", binary)
        if owner is not None:
            owner.files.add(binary)
            found.append(owner)
        found.extend(_go_module(dep.path, dep.version, binary) for dep in info.deps)
        if info.go_version:
            version = info.go_version.removeprefix("go").split()[0]
            stdlib = Component(
                "golang", "stdlib", version, _purl("golang", "stdlib", version), binary
            )
            found.append(stdlib)
    return found


# Java


def maven(view: FinalView) -> list[Component]:
    """``META-INF/maven/<group>/<artifact>/pom.properties`` inside each jar."""
    found = []
    for jar, poms in sorted(view.poms.items()):
        for member, data in poms:
            values: dict[str, str] = {}
            for line in _text(data).splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "!")):
                    key, _, value = line.partition("=")
                    values[key.strip()] = value.strip()
            group, artifact = values.get("groupId"), values.get("artifactId")
            version = values.get("version", "")
            if not group or not artifact:
                continue
            purl = _purl("maven", artifact, version, group)
            component = Component("maven", f"{group}:{artifact}", version, purl, f"{jar}!/{member}")
            component.files.add(jar)
            found.append(component)
    return found


# .NET


def _deps_json_components(data: bytes, source: str, directory: str) -> Iterator[Component]:
    document = json.loads(data)
    libraries = document.get("libraries", {}) if isinstance(document, dict) else {}
    targets = document.get("targets", {}) if isinstance(document, dict) else {}
    target_name = (document.get("runtimeTarget") or {}).get("name", "")
    target = targets.get(target_name, {}) if isinstance(targets, dict) else {}
    for key, library in libraries.items() if isinstance(libraries, dict) else ():
        kind = library.get("type") if isinstance(library, dict) else None
        if kind not in ("package", "runtimepack"):
            continue
        name, _, version = key.partition("/")
        name = name.removeprefix("runtimepack.")
        component = Component("nuget", name, version, _purl("nuget", name, version), source)
        assets = target.get(key, {}) if isinstance(target, dict) else {}
        native = assets.get("native", {}) if isinstance(assets, dict) else {}
        # Publishing copies native assets next to the application, without their directories.
        component.files |= {f"{directory}/{posixpath.basename(asset)}" for asset in native}
        yield component


def dotnet(view: FinalView) -> list[Component]:
    """``*.deps.json`` files and the deps.json embedded in single-file bundles."""
    documents = [(path, data, posixpath.dirname(path)) for path, data in view.files.items()]
    documents = [item for item in documents if item[0].endswith(".deps.json")]
    for binary, findings in view.binaries.items():
        if findings.deps_json is not None:
            documents.append((binary, findings.deps_json, posixpath.dirname(binary)))
    found = []
    for source, data, directory in sorted(documents):
        try:
            components = list(_deps_json_components(data, source, directory))
        except (ValueError, AttributeError, RecursionError) as error:
            view.notes.append(f"{source}: deps.json is not readable ({error})")
            continue
        for component in components:
            if source in view.binaries:
                component.files.add(source)
            found.append(component)
    return found


# Chisel (chiseled Ubuntu images)


def chisel(view: FinalView, os: Distro) -> list[Component]:
    """``/var/lib/chisel/manifest.wall``: zstd-compressed JSON lines of packages, slices, paths."""
    data = view.files.get(CHISEL_MANIFEST)
    if data is None:
        return []
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        text = reader.read(CHISEL_MAX_BYTES + 1)
    except zstandard.ZstdError as error:
        view.notes.append(f"{CHISEL_MANIFEST}: not zstd ({error})")
        return []
    if len(text) > CHISEL_MAX_BYTES:
        view.notes.append(f"{CHISEL_MANIFEST}: over {CHISEL_MAX_BYTES} bytes decompressed")
        return []
    packages: dict[str, Component] = {}
    owners: dict[str, set[str]] = {}
    for line in _text(text).splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("kind") == "package" and entry.get("name") and entry.get("version"):
            name, version = str(entry["name"]), str(entry["version"])
            qualifiers = dict(os.qualifier) | ({"arch": entry["arch"]} if entry.get("arch") else {})
            purl = _purl("deb", name, version, os.id or "ubuntu", qualifiers)
            packages[name] = Component("deb", name, version, purl, CHISEL_MANIFEST)
        elif entry.get("kind") == "path" and isinstance(entry.get("slices"), list):
            for slice_name in entry["slices"]:
                package = str(slice_name).partition("_")[0]
                owners.setdefault(package, set()).add(str(entry.get("path", "")))
    for name, component in packages.items():
        component.files |= owners.get(name, set())
    return list(packages.values())


def all_components(view: FinalView) -> list[Component]:
    """Every source, in the order of their value for Online Boutique's images."""
    os = distro(view)
    return [
        *go(view),
        *dpkg(view, os),
        *dpkg_status_d(view, os),
        *chisel(view, os),
        *apk(view, os),
        *python(view),
        *npm(view),
        *maven(view),
        *dotnet(view),
    ]
