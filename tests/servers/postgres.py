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
