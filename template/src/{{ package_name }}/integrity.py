"""Artifact integrity: the SHA-256 recorded at training must match the file being loaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1024 * 1024


class UntrustedArtifactError(RuntimeError):
    """The artifact is not the one training wrote, or holds types nobody vetted."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as artifact:
        while chunk := artifact.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected_sha256: str) -> None:
    """Refuse a stale, swapped or tampered artifact before deserialising a byte of it."""
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise UntrustedArtifactError(
            f"{path} has SHA-256 {actual}, but training recorded {expected_sha256}: "
            "retrain, or restore the artifact that matches its metadata."
        )
