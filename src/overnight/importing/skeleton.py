'''What `overnight init` writes: a commented overnight.toml and a first batch module.'''

CONFIG = '''\
# overnight.toml: where overnight keeps its records, and your batches.
# Commands find this file from this folder or any folder below it.

[overnight]
state_dir = ".overnight"          # the ledger (ledger.db) and every step's log, under logs/
# timezone = "America/Chicago"    # for "yesterday" and schedules; default: this machine's zone
# workers = 1                     # steps at once (a night is usually a chain)

[batches.nightly]
module = "nightly.py"             # a path from this folder, or a dotted module name
# schedule = "0 1 * * *"          # cron syntax, in the batch's zone: 01:00 every night
# mail = "failure"                # always | failure | never (needs [mail] below)
# deadline = "06:00"              # when it must be done by

# [mail]
# host = "localhost"
# port = 25
# from = "overnight@example.com"
# to = ["it@example.com"]

# [retention]
# keep = "400d"                   # the scheduler prunes older nights' logs once a day
'''

BATCH = '''\
"""nightly: the end of day. Each step runs once the one before it has succeeded; after a
failure, fix the cause and run the same command again: what succeeded is skipped.

    overnight run nightly --dry-run     what would run
    overnight run nightly               run it (for yesterday; --date D for another day)
    overnight status nightly            each step: state, time, tries, log
"""

from overnight import Batch
from overnight.batch import weekdays

batch = Batch("nightly", description="End of day")

# A shell command; {date} is the run's date (YYYY-MM-DD), {date:%Y%m%d} any strftime format.
batch.command("export", "echo exporting sales for {date}")

# An argv list runs without a shell; timeout, retries and retry_delay as needed.
batch.command("import", ["echo", "importing"], timeout="20m", retries=2, retry_delay="30s")

with batch.parallel():  # these may run side by side (with workers > 1)
    batch.command("report-sales", "echo sales report for {date}")
    batch.command("report-labor", "echo labor report for {date}", when=weekdays)  # skipped on weekends


@batch.step  # a Python step, after both reports
def publish(ctx):
    ctx.log.info("publishing the reports for %s", ctx.date)
'''
