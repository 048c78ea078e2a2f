"""Shared bench helpers: Django set-up, JSON lines, timing, peak memory of a child process."""
import json
import os
import subprocess
import sys
import tempfile
import time


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etl_portal.settings")
    os.environ.setdefault("ETL_DATA_DIR", tempfile.mkdtemp(prefix="etl-bench-"))
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


def run_child(module, *args):
    """Run `python -m module args` and return its last stdout line parsed as JSON."""
    output = subprocess.run([sys.executable, "-m", module, *args], check=True, capture_output=True, text=True,
                            env={**os.environ})
    return json.loads(output.stdout.strip().splitlines()[-1])
