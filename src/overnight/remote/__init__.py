"""Steps on other hosts: the executor the runner uses (executor.py), the Celery app
(celery_app.py) and what a worker runs for a step (worker.py)."""
