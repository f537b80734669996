"""The durable job queue in the application database (transactional outbox).

    from siyu.jobs.service import enqueue            # in the caller's transaction
    from siyu.jobs.registry import job_handler       # in siyu/<domain>/jobs.py
    from siyu.jobs.events import publish, subscribe  # domain events between domains

Workers: `siyu worker` (siyu.jobs.worker.run_worker). Console page: /jobs; REST: /api/v1/jobs."""
