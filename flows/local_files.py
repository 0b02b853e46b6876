"""Log files given by the user, checked before anything is read.

Kept apart from the Prefect task so that `completions-agent scan` starts without
importing Prefect.
"""

from __future__ import annotations

from pathlib import Path

from flows.errors import LogFileError
from flows.records import LogFile, ScrapeResult


def scrape_files(paths: list[str]) -> ScrapeResult:
    """Point the filter at the user's files.

    Raises:
        LogFileError: a file does not exist or is not readable.
    """
    files: list[LogFile] = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise LogFileError(
                f"log file {name!r} does not exist or is not a regular file; "
                "pass files printed by `kubectl logs` (plain, --timestamps or "
                "--prefix)"
            )
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise LogFileError(
                f"cannot read log file {name!r}: {exc.strerror}"
            ) from exc
        files.append(LogFile(path=path.resolve()))
    return ScrapeResult(source="files", files=files)
