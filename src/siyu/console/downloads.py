"""File downloads of console pages (exports): the file is written in full first, so that the
export's audit entry (with its row count) commits with the request, then streamed from a spooled
temporary file (in memory up to 8 MB, on disk beyond)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import IO

from fastapi.responses import StreamingResponse

from siyu import tabular

SPOOL_BYTES = 8 * 1024 * 1024


def file_response(write: Callable[[IO[bytes]], object], fmt: str, stem: str) -> StreamingResponse:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by the iterator
    try:
        write(spool)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)

    def chunks():
        try:
            while chunk := spool.read(1 << 16):
                yield chunk
        finally:
            spool.close()

    return StreamingResponse(chunks(), media_type=tabular.MEDIA_TYPES[fmt],
                             headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})
