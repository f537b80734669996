"""Jobs of the compliance domain (the worker imports this module; each capability keeps its own)."""

from __future__ import annotations

from siyu.compliance import (
    archive_jobs,  # noqa: F401 - registers the chat-archive jobs
    handover_jobs,  # noqa: F401 - registers the customer-handover jobs
    privacy_jobs,  # noqa: F401 - registers retention and opt-out jobs
    quality_jobs,  # noqa: F401,E402 - registers the service-quality jobs
)
