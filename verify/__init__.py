"""Registry and image checks that prove a multi-arch image before its tag moves.

Pure Python (no Pulumi imports), run as ``python -m verify REF ...``. The modules:

- ``reference``: parses ``host/repository:tag`` and ``host/repository@sha256:...`` references.
- ``platforms``: ``os/arch[/variant]`` values and how index entries match them.
- ``manifests``: OCI / Docker media types and the parsed index and manifest documents.
- ``digests``: digest syntax and streaming digest checks.
- ``elf``: ELF header parsing and the machine each platform's binaries must carry.
- ``layers``: streamed decompression of layer blobs (gzip through ISA-L, zstd).
- ``tarscan``: the tar reader for hostile layers: true end of archive, bounded headers, names
  normalised, every name of an ELF file (hard links included) recorded.
- ``prefetch``: a layer's download and sha256 a few chunks ahead of its inflation.
- ``auth``: credential sources, ``WWW-Authenticate`` parsing, which token realms may receive
  credentials (registrable domains from the Public Suffix List).
- ``deadline``: overall deadlines on requests, enforced by a watchdog that cuts the socket.
- ``registry``: the HTTP client for the registry API (auth flows, redirects, retries,
  streaming, sizes), treating every answer as hostile.
- ``checks``: the verification of images, platforms and layers (concurrent, layers deduplicated).
- ``report``: the ``--json`` document and the failure lines printed on stderr (escaped).
- ``probe``: the ``--probe`` and ``--env`` syntax of ``--run`` (pure; the config uses it too).
- ``run``: ``--run``, each verified platform's image started with Docker and probed.
- ``cli``: argument parsing, the run's ``--timeout`` and exit codes.
- ``artifacts``: Artifact Registry's REST API (packages, versions, tags, deleting a version).
- ``gc``: ``python -m verify gc``, deleting the versions no tag reaches.
- ``published``: ``python -m verify published``, the every-run check of exported refs.

What the verifier trusts and the limits it keeps: ``docs/threat-model.md``.
"""
