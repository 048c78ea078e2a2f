"""A throwaway database on the local PostgreSQL server, for source queries."""
import os
import uuid

import psycopg

from tests.servers.common import unavailable

ADMIN_DSN = os.environ.get("ETL_TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def admin_connect():
    try:
        return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {ADMIN_DSN}: {exc}")


def create_database(prefix="etl_src"):
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name):
    with admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dsn_parts():
    parts = dict(item.split("=", 1) for item in ADMIN_DSN.split())
    return parts.get("host", "127.0.0.1"), int(parts.get("port", 5432)), parts.get("user", "postgres")


def create_typed_table(dbname, table):
    """A table with one column of every type whose text form the writers must agree on, and a NULL row."""
    host, port, user = dsn_parts()
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"""CREATE TABLE {table} (i bigint, b boolean, n numeric, f float8, d date, ts timestamp,
                         tz timestamptz, bin bytea, j jsonb, u uuid, t text)""")
        conn.execute(f"""INSERT INTO {table} VALUES
            (1, true, 12.50, 0.1, '2024-02-29', '2024-01-02 03:04:05.12', '2024-01-02 03:04:05+00', '\\x00ff',
             '{{"a": [1, "é"]}}', '12345678-1234-5678-1234-567812345678', 'plain'),
            (2, false, -3, 1e20, '1999-12-31', '2000-01-01 00:00:00', '2024-06-01 12:00:00.5+02', '',
             '[]', NULL, ''),
            (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""")
