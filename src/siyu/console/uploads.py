"""File uploads of console pages (imports): the uploaded file copied to a temporary file of its own
suffix, refused when absent or larger than the page allows, and removed afterwards."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fastapi import UploadFile

from siyu.errors import InvalidInput


@contextlib.contextmanager
def uploaded_file(file: UploadFile | None, *, max_bytes: int, field: str = "file") -> Iterator[tuple[str, str]]:
    """(path of a temporary copy, the file's name as sent) of an upload, for an importer to read."""
    if file is None or not getattr(file, "filename", None):
        raise InvalidInput("choose a file", field=field)
    suffix = Path(file.filename or "").suffix.lower()[:8]
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        shutil.copyfileobj(file.file, tmp, length=1 << 16)
        if tmp.tell() > max_bytes:
            raise InvalidInput("the file is larger than %(n)s MB", field=field, params={"n": max_bytes >> 20})
        tmp.flush()
        yield tmp.name, file.filename or ""
