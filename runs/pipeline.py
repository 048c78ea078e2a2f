"""The run pipeline: the stages composed, in order, for one claimed run.

source (runs/sources.py) -> processing (runs/processing.py) -> conditions (runs/conditions.py; when one does
not hold nothing is delivered and the run ends as a warning) -> drift (runs/drift.py: the output's columns and
row count against the task's last good runs; a warning, or the run stops) -> packaging (runs/packaging.py) -> delivery
(runs/delivery.py, each file checked on the server: runs/delivery_proof.py) -> the receivers' acknowledgement
files awaited -> the files recorded (a refusal fails the run only after that). Between stages the run's stop is checked, so a cancelled run never
delivers after it was stopped. Each stage takes the RunContext (runs/context.py) and the files so far and
returns the files it made; runs/execution.py claims the run, calls `run_pipeline` and records the outcome.
"""
from connections.secrets import scrub
from etl_portal.cancellation import LEASE_LOST, RunStopped, check_stop, stop_requested
from runs import archive, conditions, delivery, delivery_proof, drift, packaging, parameters, processing, sources
from runs.context import RunContext
from runs.durable import ensure_connected
from runs.errors import PipelineError
from runs.files import run_folder
from runs.models import RunFile


def _next_stage(run):
    """Between stages: stop when asked to, and make sure the app database answers. A stage may have worked for
    hours on other servers meanwhile; if the app database restarted, its first read (the task's destinations,
    conditions) would fail the run: `ensure_connected` reconnects, with back-off (runs/durable.py)."""
    check_stop(run.pk)
    ensure_connected()


def run_pipeline(run, secrets=()):
    """Run every stage for `run`; return the warnings (empty when all went well)."""
    task = run.task.with_effective_settings()  # every shared setting at its effective level (tasks/inheritance.py)
    ctx = RunContext(run=run, task=task, folder=run_folder(task.pk, run.pk),
                     params=parameters.resolve(task, run), secrets=list(secrets),
                     log=lambda message, level="info": run.log(scrub(message, secrets), level=level))
    check_stop(run.pk)
    outputs = sources.produce(ctx)
    _next_stage(run)
    outputs = processing.apply(ctx, outputs)
    ensure_connected()
    reason = conditions.failed_condition(ctx, outputs)
    if reason:
        ctx.warn(f"Not delivered: {reason}")
        return ctx.warnings
    drift.check(ctx)
    outputs = packaging.finish(ctx, outputs)
    _next_stage(run)
    outputs = delivery.deliver_all(ctx, outputs)
    refused = delivery_proof.await_answers(ctx, ctx.awaited_answers)
    if stop_requested(run.pk) == LEASE_LOST:
        # Fenced off while delivering: another worker may own the run now, so this one records nothing. (A cancel
        # or timeout this late came too late to matter: the files are out, and recorded.)
        raise RunStopped(LEASE_LOST)
    stored = [RunFile(run=run, name=output.name, shown_name=run.masker(output.name), size=output.size,
                      md5=output.md5, sha256=output.sha256 or "",
                      stored_path=archive.store(output.path, warn=lambda why: ctx.log(why, level="warning")),
                      deliveries=[RunFile.shown_record(record, run.masker) for record in output.deliveries])
              for output in outputs]
    if not run.record_files(stored):  # the reaper took the run while it delivered: fenced, as above
        raise RunStopped(LEASE_LOST)
    sources.after_delivery(ctx)
    if refused:  # the files did reach the receiver, and are recorded: only then does the run fail
        raise PipelineError(f"The receiver did not accept the delivery: {refused}", step="acknowledgement")
    return ctx.warnings
