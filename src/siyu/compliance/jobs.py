"""Jobs of the compliance domain (the worker imports this module; each capability keeps its own)."""

from __future__ import annotations

from siyu.compliance import archive_jobs  # noqa: F401 - registers the chat-archive jobs
