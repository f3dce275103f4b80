"""Names of Cloud KMS key versions, in a module with no heavy import: the Pulumi program's
config parser (`plan/settings.py`) checks `attest.kms` with the same rule as `--kms`."""

import re

KEY_VERSION = re.compile(
    r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/[a-z0-9-]+/keyRings/[A-Za-z0-9_-]{1,63}"
    r"/cryptoKeys/[A-Za-z0-9_-]{1,63}/cryptoKeyVersions/[1-9][0-9]*"
)
"""A full key version resource name."""
KEY_VERSION_FORM = "projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N"
