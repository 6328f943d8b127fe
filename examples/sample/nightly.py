"""A sample night: export, import, three reports side by side, publish, maintenance.

Every step writes into ./out/ so you can see what ran. To break the night on purpose:

    touch break-import        # import-products fails until the file is gone

then `overnight run nightly` fails at import-products; `rm break-import` and run the same
command again: what already succeeded is skipped, the rest runs.
"""

from pathlib import Path

from overnight import Batch
from overnight.batch import weekdays

batch = Batch("nightly", description="End of day for the sample shop")

batch.command("export-pos", "bin/export-pos {date}")
batch.command("import-products", ["bin/import-products", "{date}"], retries=1, retry_delay="1s")
batch.command("import-prices", "bin/work 0.3 prices {date}")

with batch.parallel():
    batch.command("report-sales", "bin/work 0.6 'sales report' {date:%Y%m%d}")
    batch.command("report-labor", "bin/work 0.5 'labor report' {date:%Y%m%d}")
    batch.command("report-inventory", "bin/work 0.7 'inventory report' {date:%Y%m%d}")


@batch.step(retries=1, retry_delay="1s")
def publish(ctx):
    """Gather the three reports into one page (a Python step: it gets a context)."""
    out = Path("out")
    parts = sorted(out.glob(f"*report*{ctx.date:%Y%m%d}*.txt"))
    page = out / f"published-{ctx.date}.txt"
    page.write_text("".join(p.read_text() for p in parts))
    ctx.log.info("published %d reports for %s to %s", len(parts), ctx.date, page)


batch.command("vacuum-db", "bin/work 0.3 vacuum {date}", timeout="1m")
batch.command("archive-logs", "bin/work 0.2 archive {date}", when=weekdays)
batch.command("backup", "bin/work 0.4 backup {date}", timeout="10m", idempotent=True)


@batch.step
def tell_the_team(ctx):
    ctx.log.info("night of %s done", ctx.date)
    print(f"all done for {ctx.date}")
