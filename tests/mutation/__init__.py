"""Mutation testing of the packages that decide what passes (docs/mutation.md).

`scripts/mutation [PACKAGE]` runs `python -m tests.mutation`; `results` turns mutmut's result
files and the reviewed list of equivalent mutants (`equivalent.txt`) into a score per package.
"""
