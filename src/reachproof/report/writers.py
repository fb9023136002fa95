"""Which output formats exist, the file each is written to, and writing them.

The terminal report goes to stdout; every other format is a file in the output directory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from reachproof.errors import InputError
from reachproof.files import private_dirs, remove_created, write_private
from reachproof.report.model import Report


class Format(StrEnum):
    TERMINAL = "terminal"
    JSON = "json"
    JUNIT = "junit"
    SARIF = "sarif"
    HTML = "html"
    MARKDOWN = "markdown"


@dataclass(frozen=True)
class FileFormat:
    filename: str
    module: str  # reachproof.report.<module>
    function: str  # Report -> str

    def render(self, report: Report) -> str:
        render: Callable[[Report], str] = getattr(
            importlib.import_module(f"reachproof.report.{self.module}"), self.function
        )
        return render(report)


FILES: dict[Format, FileFormat] = {
    Format.JSON: FileFormat("report.json", "json_report", "render_json"),
    Format.JUNIT: FileFormat("junit.xml", "junit", "render_junit"),
    Format.SARIF: FileFormat("report.sarif", "sarif", "render_sarif"),
    Format.HTML: FileFormat("report.html", "html", "render_html"),
    Format.MARKDOWN: FileFormat("summary.md", "markdown", "render_markdown"),
}


def default_output_dir(root: Path, started: datetime) -> Path:
    """`reports/<UTC timestamp>/`: one folder a run, sortable by name."""
    return root / started.strftime("%Y%m%dT%H%M%SZ")


def write_reports(report: Report, formats: Sequence[Format], directory: Path) -> list[Path]:
    """Render every file format asked for into `directory`; returns the paths written.

    Everything is rendered before the first file is touched; files are private and atomic
    (files.py). An interrupted or failed write takes back the files and directories it made,
    so a run never leaves part of a report set behind.
    """
    wanted = [f for f in formats if f in FILES]
    if not wanted:
        return []
    rendered = [(directory / FILES[f].filename, FILES[f].render(report)) for f in wanted]
    try:
        created = private_dirs(directory)
    except OSError as exc:
        raise InputError(
            f"{directory}: cannot create the output directory: {exc.strerror}"
        ) from exc
    written: list[Path] = []
    path = directory
    try:
        for path, text in rendered:
            write_private(path, text.encode("utf-8"))
            written.append(path)
    except BaseException as exc:
        for done in written:
            done.unlink(missing_ok=True)
        remove_created(created)
        if isinstance(exc, OSError):
            raise InputError(f"{path}: cannot write the report: {exc.strerror}") from exc
        raise
    return written
