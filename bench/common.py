"""Shared bench helpers: Django set-up, JSON lines, timing, peak memory of a child process."""
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time


def bench_keys():
    """Throwaway keys in the environment: each bench uses fresh data folders, which hold no key files (settings
    never write them), and every child process (`manage.py qcluster`, `python -m bench.x --child`) inherits them."""
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + secrets.token_urlsafe(32))
    os.environ.setdefault("ETL_FERNET_KEYS", base64.urlsafe_b64encode(os.urandom(32)).decode())


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etl_portal.settings")
    os.environ.setdefault("ETL_DATA_DIR", tempfile.mkdtemp(prefix="etl-bench-"))
    bench_keys()
    import django

    django.setup()


def emit(name, value, unit, ref=None, ratio=None, **extra):
    line = {"name": name, "value": round(value, 4), "unit": unit,
            "ref": None if ref is None else round(ref, 4), "ratio": None if ratio is None else round(ratio, 4)}
    line.update(extra)
    print(json.dumps(line), flush=True)
    return line


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def best_of(runs, function, *args, **kwargs):
    """Fastest of `runs` timings: the least disturbed by the other core's noise."""
    return min(timed(function, *args, **kwargs)[0] for _ in range(runs))


def paired(runs, reference, measured):
    """Best (fastest) times of `reference` and `measured` (callables), run alternately `runs` times each, so a
    change in the machine's load (other jobs on the 2 cores) hits both alike."""
    best_reference = best_measured = float("inf")
    for _ in range(runs):
        best_reference = min(best_reference, timed(reference)[0])
        best_measured = min(best_measured, timed(measured)[0])
    return best_reference, best_measured


def run_child(module, *args):
    """Run `python -m module args` and return its last stdout line parsed as JSON."""
    output = subprocess.run([sys.executable, "-m", module, *args], check=True, capture_output=True, text=True,
                            env={**os.environ})
    return json.loads(output.stdout.strip().splitlines()[-1])


def stop_and_clean(processes, cleanup=()):
    """End a benchmark that started workers: SIGTERM each process still running (only it: a cluster's main process
    stops its own workers), kill what is still there after 30 s, close the database connections, run the
    `cleanup` steps, and remove the benchmark's data folders (ETL_DATA_DIR, ETL_LOCAL_ROOTS)."""
    import shutil

    from django.db import connections

    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    connections.close_all()
    for step in cleanup:
        step()
    shutil.rmtree(os.environ["ETL_DATA_DIR"], ignore_errors=True)
    shutil.rmtree(os.environ["ETL_LOCAL_ROOTS"], ignore_errors=True)
