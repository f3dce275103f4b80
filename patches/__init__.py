"""Dockerfile patches that make the Online Boutique's arm64 images hold arm64 binaries.

Pure Python, no Pulumi: `dockerfile` parses, `operations` are the structural edits,
`definitions` loads the per-revision patch sets (upstream.toml), `engine` plans and writes them
all or nothing, `cli` is `python -m patches`, `record` prints the digests for a new revision.
"""
