"""Host state the Pulumi program relies on, ensured by scripts that Commands run.

`python -m host checkout ...` ensures the pinned upstream checkout; `python -m host builder ...`
ensures, reconciles or removes the buildx builder; `python -m host registry ...` ensures or
removes the local stack's loopback registry. Each prints one JSON object on stdout
(`host.contract`) and exits 0, or prints one error on stderr and exits 2. No Pulumi imports.
"""
