"""QR codes drawn by Siyu itself (segno): a PNG answer for a link, for pages and posters to show
without loading an image from anywhere else."""

from __future__ import annotations

import io

from fastapi.responses import Response


def qr_png(data: str, *, scale: int = 12, filename: str | None = None) -> Response:
    import segno

    buf = io.BytesIO()
    segno.make(data, error="m").save(buf, kind="png", scale=scale, border=4, dark="#1d2939")
    headers = {"Cache-Control": "private, max-age=300"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(buf.getvalue(), media_type="image/png", headers=headers)
