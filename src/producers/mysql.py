"""The MySQL ``Users`` table the users generator writes and the users source reads.

Beyond the original's columns, two additions make the table a source of a true Kafka table:
``updated_at`` (set by MySQL on insert and on every update, microsecond precision) lets the
source pick up updated rows, not only new ones, as the JDBC connector's
timestamp+incrementing mode does; and a trigger logs deletions into ``<table>_deleted``, so a
deleted user becomes a tombstone (a polling source cannot see a row that is gone).

Every connection has timeouts, so that a server that stops answering (hung, or cut off
without a reset) is an error instead of a wait forever, PyMySQL's default for reads and
writes: ``MYSQL_CONNECT_TIMEOUT_S`` (10) to connect and log in, ``MYSQL_READ_TIMEOUT_S`` (60)
and ``MYSQL_WRITE_TIMEOUT_S`` (60) per socket read and write. A timeout raises
``pymysql.err.OperationalError``, as a lost connection does.
"""

from __future__ import annotations

import re

import pymysql

from clients.settings import MySQLSettings, env

#: Override for tests and for running several demos on one database.
DEFAULT_TABLE = env("USERS_TABLE", "Users")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")


def table_name(name: str) -> str:
    """A table name safe to put in SQL (identifiers cannot be query parameters)."""
    if not _NAME.match(name):
        raise ValueError(f"invalid table name {name!r}: letters, digits and _ only")
    return name


def _seconds(name: str, default: float) -> float:
    raw = env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if value > 0:
            return value
    raise ValueError(f"environment variable {name}={raw!r} is not a positive number")


def connect() -> pymysql.connections.Connection:
    settings = MySQLSettings.from_env()
    return pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password,
        database=settings.database,
        autocommit=True,
        connect_timeout=_seconds("MYSQL_CONNECT_TIMEOUT_S", 10),
        # Per socket read or write, not per query: far above what any statement here waits
        # for one (batch reads, multi-row inserts), far below forever.
        read_timeout=_seconds("MYSQL_READ_TIMEOUT_S", 60),
        write_timeout=_seconds("MYSQL_WRITE_TIMEOUT_S", 60),
    )


def ensure_table(conn: pymysql.connections.Connection, table: str = DEFAULT_TABLE) -> None:
    """Create the users table, its deletion log and trigger if missing (idempotent)."""
    table = table_name(table)
    with conn.cursor() as cur:
        cur.execute(
            f"""CREATE TABLE IF NOT EXISTS `{table}` (
                user_id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                age INT,
                gender VARCHAR(10),
                country VARCHAR(200),
                subscription VARCHAR(20),
                updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                    ON UPDATE CURRENT_TIMESTAMP(6),
                INDEX changes (updated_at, user_id)
            )"""
        )
        cur.execute(
            f"""CREATE TABLE IF NOT EXISTS `{table}_deleted` (
                id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                user_id INT UNSIGNED NOT NULL,
                deleted_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
            )"""
        )
        cur.execute(
            f"""CREATE TRIGGER IF NOT EXISTS `{table}_log_delete` AFTER DELETE ON `{table}`
                FOR EACH ROW INSERT INTO `{table}_deleted` (user_id) VALUES (OLD.user_id)"""
        )
