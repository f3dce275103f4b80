"""ELF header parsing on crafted headers: both classes, both byte orders, and non-ELF input."""

import pytest

from tests.verify_bytes import AARCH64, ARM, I386, S390, X86_64, elf_header
from verify.elf import PLATFORM_MACHINES, elf_machine, machine_name


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("order", ["little", "big"])
@pytest.mark.parametrize("machine", [X86_64, AARCH64, I386, ARM, S390, 0x102])
def test_machine_is_read_in_the_declared_byte_order(bits: int, order: str, machine: int) -> None:
    assert elf_machine(elf_header(machine, bits, order)[:20]) == machine  # type: ignore[arg-type]


def test_byte_order_matters() -> None:
    header = bytearray(elf_header(AARCH64, 64, "little"))
    header[5] = 2  # claim big-endian: the same two bytes now read 0xB700
    assert elf_machine(bytes(header)) == 0xB700


@pytest.mark.parametrize(
    "header",
    [
        b"",
        b"\x7fELF",  # too short for e_machine
        elf_header(X86_64)[:19],
        b"#!/bin/sh\n" + b"\0" * 30,
        b"\x7fELG" + elf_header(X86_64)[4:],
        elf_header(X86_64)[:4] + b"\x03" + elf_header(X86_64)[5:],  # unknown class
        elf_header(X86_64)[:5] + b"\x00" + elf_header(X86_64)[6:],  # unknown byte order
    ],
)
def test_non_elf_input_has_no_machine(header: bytes) -> None:
    assert elf_machine(header) is None


def test_platform_machines_and_names() -> None:
    assert PLATFORM_MACHINES["amd64"] == X86_64
    assert PLATFORM_MACHINES["arm64"] == AARCH64
    assert machine_name(X86_64) == "x86-64"
    assert machine_name(AARCH64) == "AArch64"
    assert machine_name(0x1234) == "e_machine 0x1234"
