"""SBOM documents of one platform: SPDX 2.3 JSON (default) or CycloneDX 1.6 JSON.

Both describe the platform's image manifest (an OCI purl with the manifest digest and the
architecture) containing every component, each with its purl and version. A component that owns
ELF files carries their machines (SPDX: an annotation; CycloneDX: properties), and names those
that are not for the platform's machine: a cross-architecture native module shows in the SBOM.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from packageurl import PackageURL

from verify.reference import Reference
from verify.sbom.inventory import FOREIGN_PATHS_LISTED, Inventory, Package

TOOL = "boutique-verify-1"
NAMESPACE_BASE = "https://boutique-multiarch.invalid/spdx"
FORMATS = ("spdx", "cyclonedx")
EXTENSIONS = {"spdx": "spdx.json", "cyclonedx": "cdx.json"}
ELF_MACHINES_PROPERTY = "boutique:elf:machines"
ELF_FOREIGN_PROPERTY = "boutique:elf:notForPlatform"


def file_name(inventory: Inventory, document_format: str) -> str:
    """``linux-amd64.spdx.json``, ``linux-arm64-v8.cdx.json``."""
    platform = str(inventory.platform).replace("/", "-")
    return f"{platform}.{EXTENSIONS[document_format]}"


def image_purl(ref: Reference, inventory: Inventory) -> str:
    """``pkg:oci/<name>@sha256:...?arch=arm64&repository_url=<registry>/<repository>``."""
    qualifiers = {
        "arch": inventory.platform.architecture,
        "repository_url": f"{ref.registry}/{ref.repository}",
    }
    if inventory.platform.variant:
        qualifiers["variant"] = inventory.platform.variant
    name = ref.repository.rpartition("/")[2]
    return PackageURL("oci", None, name, inventory.manifest_digest, qualifiers).to_string()


def elf_summary(package: Package, inventory: Inventory) -> tuple[str, list[str]]:
    """``AArch64=3, x86-64=1`` and the first paths not for the platform's machine."""
    machines = ", ".join(f"{name}={count}" for name, count in sorted(package.machines().items()))
    return machines, package.foreign(inventory.expected_machine)[:FOREIGN_PATHS_LISTED]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spdx_id(kind: str, number: int) -> str:
    return f"SPDXRef-{re.sub(r'[^A-Za-z0-9.-]', '-', kind)}-{number}"


def spdx_document(ref: Reference, inventory: Inventory) -> dict[str, Any]:
    """An SPDX 2.3 JSON document of one platform."""
    created = _now()
    image = {
        "SPDXID": "SPDXRef-Image",
        "name": ref.repository,
        "versionInfo": inventory.manifest_digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [_purl_ref(image_purl(ref, inventory))],
    }
    packages: list[dict[str, Any]] = [image]
    relationships = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-Image",
        }
    ]
    for number, package in enumerate(inventory.packages, start=1):
        component = package.component
        spdx_id = _spdx_id(component.ecosystem, number)
        entry: dict[str, Any] = {
            "SPDXID": spdx_id,
            "name": component.name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "sourceInfo": "read from " + ", ".join(package.sources),
            "externalRefs": [_purl_ref(component.purl)],
        }
        if component.version:
            # Optional in SPDX 2.3 (7.3); left out, like CycloneDX's, when there is none.
            entry["versionInfo"] = component.version
        if package.elf:
            machines, foreign = elf_summary(package, inventory)
            comment = f"ELF machines: {machines}"
            if foreign:
                comment += f"; not for {inventory.platform}: {', '.join(foreign)}"
            entry["annotations"] = [
                {
                    "annotationType": "OTHER",
                    "annotator": f"Tool: {TOOL}",
                    "annotationDate": created,
                    "comment": comment,
                }
            ]
        packages.append(entry)
        relationships.append(
            {
                "spdxElementId": "SPDXRef-Image",
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": spdx_id,
            }
        )
    comment = f"{inventory.unowned_elf} ELF file(s) owned by no listed component"
    if inventory.notes:
        comment += "; not read: " + "; ".join(inventory.notes)
    digest_hex = inventory.manifest_digest.removeprefix("sha256:")
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{ref.registry}/{ref.repository}@{inventory.manifest_digest}",
        "documentNamespace": f"{NAMESPACE_BASE}/{digest_hex}",
        "comment": comment,
        "creationInfo": {"created": created, "creators": [f"Tool: {TOOL}"]},
        "packages": packages,
        "relationships": relationships,
    }


def _purl_ref(purl: str) -> dict[str, str]:
    return {
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }


def cyclonedx_document(ref: Reference, inventory: Inventory) -> str:
    """A CycloneDX 1.6 JSON document of one platform (cyclonedx-python-lib, loaded here only)."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom()
    bom.metadata.component = image = Component(
        name=ref.repository,
        version=inventory.manifest_digest,
        type=ComponentType.CONTAINER,
        purl=PackageURL.from_string(image_purl(ref, inventory)),
        bom_ref="image",
    )
    contained = []
    for number, package in enumerate(inventory.packages, start=1):
        component = package.component
        properties = [Property(name="boutique:source", value=source) for source in package.sources]
        if package.elf:
            machines, foreign = elf_summary(package, inventory)
            properties.append(Property(name=ELF_MACHINES_PROPERTY, value=machines))
            properties.extend(Property(name=ELF_FOREIGN_PROPERTY, value=path) for path in foreign)
        contained.append(
            Component(
                name=component.name,
                version=component.version or None,
                purl=PackageURL.from_string(component.purl),
                bom_ref=f"component-{number}",
                properties=properties,
            )
        )
    bom.components.update(contained)
    # The image holds every component (no finer graph is claimed than what was read).
    bom.register_dependency(image, contained)
    return JsonV1Dot6(bom).output_as_string(indent=2)


def render(ref: Reference, inventory: Inventory, document_format: str) -> str:
    """The document text in ``document_format`` (one of :data:`FORMATS`): JSON indented by two
    spaces, ending in a newline."""
    if document_format == "cyclonedx":
        text = cyclonedx_document(ref, inventory)
    else:
        text = json.dumps(spdx_document(ref, inventory), indent=2)
    return text + "\n"
