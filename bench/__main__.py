"""`make bench`: every figure as one JSON line {"name", "value", "unit", "ref", "ratio"}.

`python -m bench` runs them all; `python -m bench extract formats:parquet` runs one group, or some figures of
a group (those in its PARTS); `python -m bench --help` lists them.
"""
import importlib
import sys

GROUPS = ["extract", "formats", "pages", "sftp", "scripts", "odbc_extract", "scheduling", "api"]


def usage():
    lines = [__doc__.strip(), "", "groups (and their figures):"]
    for group in GROUPS:
        parts = getattr(importlib.import_module(f"bench.{group}"), "PARTS", None)
        lines.append(f"  {group}" + (f"  [{', '.join(f'{group}:{part}' for part in parts)}]" if parts else ""))
    return "\n".join(lines)


def main(selected):
    from bench.common import bench_keys

    if {"-h", "--help"} & set(selected):
        print(usage())
        return
    bench_keys()
    for choice in selected or GROUPS:
        group, _, parts = choice.partition(":")
        if group not in GROUPS:
            sys.exit(f"Unknown bench group {group!r}\n\n{usage()}")
        module = importlib.import_module(f"bench.{group}")
        if parts:
            known = getattr(module, "PARTS", {})
            unknown = [part for part in parts.split(",") if part not in known]
            if unknown:
                sys.exit(f"Unknown figure {', '.join(unknown)} in {group}\n\n{usage()}")
            module.main(parts.split(","))
        else:
            module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
