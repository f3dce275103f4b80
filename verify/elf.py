"""ELF headers: which machine a binary is built for, and which machine a platform needs.

Only the identification bytes and ``e_machine`` are read: ``e_machine`` sits at offset 18 in both
ELFCLASS32 and ELFCLASS64 headers, stored in the byte order named by ``EI_DATA``.
"""

from __future__ import annotations

from typing import Literal

ELF_MAGIC = b"\x7fELF"
HEADER_BYTES = 20
"""Bytes needed to read ``e_machine``."""

_CLASSES = {1: "ELF32", 2: "ELF64"}
_BYTE_ORDERS: dict[int, Literal["little", "big"]] = {1: "little", 2: "big"}

MACHINE_NAMES = {
    0x03: "x86 (i386)",
    0x08: "MIPS",
    0x14: "PowerPC",
    0x15: "PowerPC64",
    0x16: "S390",
    0x28: "ARM",
    0x3E: "x86-64",
    0xB7: "AArch64",
    0xF3: "RISC-V",
    0x102: "LoongArch",
}

# GOARCH-style architecture names (as in OCI platforms) -> the e_machine their binaries carry.
PLATFORM_MACHINES = {
    "386": 0x03,
    "amd64": 0x3E,
    "arm": 0x28,
    "arm64": 0xB7,
    "loong64": 0x102,
    "mips64le": 0x08,
    "ppc64le": 0x15,
    "riscv64": 0xF3,
    "s390x": 0x16,
}


def machine_name(machine: int) -> str:
    """A readable name for an ``e_machine`` value."""
    return MACHINE_NAMES.get(machine, f"e_machine 0x{machine:x}")


def elf_machine(header: bytes) -> int | None:
    """The ``e_machine`` of an ELF file from its first bytes, or None when it is not ELF.

    A file that starts with the ELF magic but has an unknown class or byte order, or is shorter
    than the header, is not an executable any loader would run, so it counts as not ELF.
    """
    if len(header) < HEADER_BYTES or not header.startswith(ELF_MAGIC):
        return None
    if header[4] not in _CLASSES or header[5] not in _BYTE_ORDERS:
        return None
    return int.from_bytes(header[18:20], _BYTE_ORDERS[header[5]])
