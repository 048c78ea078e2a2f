"""`make bench`: every figure as one JSON line {"name", "value", "unit", "ref", "ratio"}.

`python -m bench` runs them all; `python -m bench extract` runs one group.
"""
import importlib
import sys

GROUPS = ["extract", "formats", "pages", "sftp", "scripts", "odbc_extract", "scheduling", "alerts", "api"]


def main(selected):
    from bench.common import bench_keys

    bench_keys()
    for group in selected or GROUPS:
        importlib.import_module(f"bench.{group}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
