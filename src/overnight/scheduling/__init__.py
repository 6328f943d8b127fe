"""Scheduling: the cron maths (cron.py), the schedules of the configured batches
(schedules.py) and the daemon that launches them (daemon.py)."""
