"""The files of a platform's final filesystem: its layers applied in order, as overlayfs would.

A captured file of layer *i* survives when no later layer has an entry at the same path or at
one of its parent directories (a file replacing a directory hides its content), a whiteout of
the path or of a parent, or an opaque marker in a parent directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from verify.sbom.binaries import BinaryFindings
from verify.tarscan import LayerScan

T = TypeVar("T")


@dataclass
class FinalView:
    """What the SBOM sources read: the surviving captures of all layers."""

    files: dict[str, bytes] = field(default_factory=dict)
    poms: dict[str, tuple[tuple[str, bytes], ...]] = field(default_factory=dict)
    binaries: dict[str, BinaryFindings] = field(default_factory=dict)
    elf: dict[str, int] = field(default_factory=dict)
    """Path -> ELF machine of every ELF file present."""
    notes: list[str] = field(default_factory=list)


def _parents(path: str) -> Iterable[str]:
    """``/a/b/c`` -> ``/a/b``, ``/a`` (not ``/``: nothing can replace or delete the root)."""
    while (path := path.rpartition("/")[0]) != "":
        yield path


class _Hidden:
    """What the layers above the one being applied hide."""

    def __init__(self) -> None:
        self.replaced: set[str] = set()
        """Paths that hide themselves and everything below them."""
        self.opaque: set[str] = set()
        """Directories that hide everything below them (but not themselves)."""

    def hides(self, path: str) -> bool:
        if path in self.replaced:
            return True
        return any(parent in self.replaced or parent in self.opaque for parent in _parents(path))


def _surviving(items: dict[str, T], hidden: _Hidden) -> dict[str, T]:
    return {path: item for path, item in items.items() if not hidden.hides(path)}


def final_view(scans: Sequence[LayerScan]) -> FinalView:
    """Merge the captures of ``scans`` (bottom layer first) into the final filesystem's view."""
    view = FinalView()
    hidden = _Hidden()
    for scan in reversed(scans):  # top layer first: what it holds wins
        inventory = scan.inventory
        if inventory is None:
            raise ValueError("a layer was scanned without an SBOM capture")
        # Paths present above are hidden, so nothing found here is in the view already.
        view.files.update(_surviving(inventory.files, hidden))
        view.poms.update(_surviving(inventory.poms, hidden))
        view.binaries.update(_surviving(inventory.binaries, hidden))
        machines = {elf_file.path: elf_file.machine for elf_file in scan.elf_files}
        view.elf.update(_surviving(machines, hidden))
        view.notes.extend(inventory.notes)
        hidden.replaced |= inventory.paths | inventory.whiteouts
        hidden.opaque |= inventory.opaque
    return view
