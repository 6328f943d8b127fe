"""After a launch: the report (report.py), sent by mail (mailer.py) and webhooks
(webhooks.py); and mail-run for any command (mailrun.py)."""
