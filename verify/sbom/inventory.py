"""The inventory of one platform: components from every source, with the ELF files they own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from verify.elf import PLATFORM_MACHINES, machine_name
from verify.platforms import Platform
from verify.sbom.overlay import final_view
from verify.sbom.sources import Component, all_components
from verify.tarscan import LayerScan

FOREIGN_PATHS_LISTED = 20
"""Per component, at most this many ELF files for another machine are named."""


@dataclass
class Package:
    """A component as the documents show it: merged over every place it was found."""

    component: Component
    sources: list[str] = field(default_factory=list)
    elf: dict[str, int] = field(default_factory=dict)
    """Owned ELF files: path -> machine."""

    def machines(self) -> Counter[str]:
        return Counter(machine_name(machine) for machine in self.elf.values())

    def foreign(self, expected: int) -> list[str]:
        """Owned ELF files not for ``expected`` (a cross-architecture native module)."""
        return sorted(path for path, machine in self.elf.items() if machine != expected)


@dataclass
class Inventory:
    """What one platform's image holds."""

    platform: Platform
    manifest_digest: str
    packages: list[Package]
    unowned_elf: int
    """ELF files that no component claims (a copied binary, a statically built tool)."""
    notes: list[str]

    @property
    def expected_machine(self) -> int:
        return PLATFORM_MACHINES[self.platform.architecture]


def _merged(components: Sequence[Component]) -> list[Package]:
    """One package per purl (the same Go module in four binaries is one package)."""
    by_purl: dict[str, Package] = {}
    for component in components:
        package = by_purl.get(component.purl)
        if package is None:
            package = by_purl[component.purl] = Package(component)
        else:
            package.component.files |= component.files
            package.component.directories |= component.directories
        if component.source not in package.sources:
            package.sources.append(component.source)
    return list(by_purl.values())


def _parents(path: str) -> list[str]:
    parents = []
    while (path := path.rpartition("/")[0]) != "":
        parents.append(path)
    return parents


def platform_inventory(
    scans: Sequence[LayerScan], platform: Platform, manifest_digest: str
) -> Inventory:
    """Merge the layers' captures and read every inventory source."""
    view = final_view(scans)
    for path, findings in sorted(view.binaries.items()):
        view.notes.extend(f"{path}: {problem}" for problem in findings.problems)
    packages = _merged(all_components(view))
    owners_of_file: dict[str, list[Package]] = {}
    owners_of_directory: dict[str, list[Package]] = {}
    for package in packages:
        for path in package.component.files:
            owners_of_file.setdefault(path, []).append(package)
        for directory in package.component.directories:
            owners_of_directory.setdefault(directory, []).append(package)
    unowned = 0
    for path, machine in view.elf.items():
        owners = owners_of_file.get(path, [])
        if not owners:
            # The nearest package directory: node_modules/a/node_modules/b/x.node is b's.
            nearest = (owners_of_directory.get(parent) for parent in _parents(path))
            owners = next((found for found in nearest if found), [])
        for package in owners:
            package.elf[path] = machine
        unowned += not owners
    return Inventory(platform, manifest_digest, packages, unowned, view.notes)
