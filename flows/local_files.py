"""Log files given by the user, checked before anything is read.

Kept apart from the Prefect task so that `completions-agent scan` starts without
importing Prefect.
"""

from __future__ import annotations

import os
from pathlib import Path

from flows.errors import LogFileError
from flows.records import LogFile, ScrapeResult


def scrape_files(paths: list[str]) -> ScrapeResult:
    """Point the filter at the user's files, each once.

    A file named twice (under the same or another path) is read once, with a
    warning: counting its calls twice would double every figure in the report.

    Raises:
        LogFileError: a file does not exist or is not readable.
    """
    files: list[LogFile] = []
    warnings: list[str] = []
    seen: dict[tuple[int, int], str] = {}
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise LogFileError(
                f"log file {name!r} does not exist or is not a regular file; "
                "pass files printed by `kubectl logs` (plain, --timestamps or "
                "--prefix)"
            )
        try:
            with path.open("rb") as handle:
                status = os.fstat(handle.fileno())
        except OSError as exc:
            raise LogFileError(
                f"cannot read log file {name!r}: {exc.strerror}"
            ) from exc
        identity = (status.st_dev, status.st_ino)
        if identity in seen:
            warnings.append(f"{name} is the same file as {seen[identity]}: read once")
            continue
        seen[identity] = name
        files.append(LogFile(path=path.resolve()))
    return ScrapeResult(source="files", files=files, warnings=warnings)
