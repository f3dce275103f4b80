"""Software bills of materials built from the deep pass (``python -m verify --deep --sbom DIR``).

- :mod:`verify.sbom.capture`: what one layer's tar stream yields while it is scanned anyway
  (package metadata files, bounded; markers inside ELF files; whiteouts and opaque directories).
- :mod:`verify.sbom.overlay`: the files of a platform's final filesystem, layers applied in order.
- :mod:`verify.sbom.gobuildinfo`, :mod:`verify.sbom.sources`: the inventory parsers.
- :mod:`verify.sbom.inventory`: the components of one platform, with the ELF files they own.
- :mod:`verify.sbom.documents`: SPDX 2.3 JSON and CycloneDX 1.6 JSON.

Only :mod:`verify.sbom.capture` is imported by a plain ``--deep`` run; the parsers and their
libraries (python-debian, packageurl-python, cyclonedx-python-lib) load only with ``--sbom``.
"""
