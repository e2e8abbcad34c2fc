"""``python -m producers.users``: generate users into MySQL, or change existing ones.

The original inserted 200 users a run (ages 20-60, Male/Female, Thailand/Singapore/Vietnam,
Platinum/Gold/Silver/Standard) and never a NULL, so its cleaning step had nothing to do. Here
each nullable column gets exactly ``--null-share`` of NULLs (rounded), the value sets are
configurable, ``--seed`` makes a run reproducible, and ``--update``/``--delete`` change the
table over time so that the users source and the cleaned table see updates and tombstones.
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from clients.logs import setup_logging
from clients.settings import env, env_int
from producers.mysql import DEFAULT_TABLE, connect, ensure_table, table_name

logger = logging.getLogger("producers.users")

COUNTRIES = (
    "Thailand,Singapore,Vietnam,Malaysia,Indonesia,Philippines,Japan,South Korea,India,"
    "Australia,Germany,France,United Kingdom,United States,Brazil"
)
NULLABLE = ("age", "gender", "country", "subscription")


@dataclass(frozen=True)
class UserSpec:
    """What a generated user may look like."""

    countries: Sequence[str]
    genders: Sequence[str] = ("Male", "Female")
    tiers: Sequence[str] = ("Platinum", "Gold", "Silver", "Standard")
    min_age: int = 20
    max_age: int = 60
    null_share: float = 0.0


def generate(count: int, spec: UserSpec, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` users; each nullable column is NULL in exactly round(share * count) rows."""
    rows = [
        {
            "age": rng.randint(spec.min_age, spec.max_age),
            "gender": rng.choice(spec.genders),
            "country": rng.choice(spec.countries),
            "subscription": rng.choice(spec.tiers),
        }
        for _ in range(count)
    ]
    nulls = round(spec.null_share * count)
    for column in NULLABLE:
        for index in rng.sample(range(count), nulls):
            rows[index][column] = None
    return rows


def insert(conn: Any, table: str, rows: list[dict[str, Any]], batch: int) -> None:
    sql = f"INSERT INTO `{table}` (age, gender, country, subscription) VALUES (%s, %s, %s, %s)"
    with conn.cursor() as cur, tqdm(total=len(rows), unit="user", desc="insert") as bar:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            cur.executemany(sql, [tuple(r[c] for c in NULLABLE) for r in chunk])
            bar.update(len(chunk))


def update(conn: Any, table: str, count: int, spec: UserSpec, rng: random.Random) -> int:
    """Give ``count`` random existing users new values (NULLs with the same share)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT user_id FROM `{table}` ORDER BY user_id")
        ids = [row[0] for row in cur.fetchall()]
        chosen = rng.sample(ids, min(count, len(ids)))
        rows = generate(len(chosen), spec, rng)
        cur.executemany(
            f"UPDATE `{table}` SET age=%s, gender=%s, country=%s, subscription=%s WHERE user_id=%s",
            [(*(r[c] for c in NULLABLE), user_id) for r, user_id in zip(rows, chosen, strict=True)],
        )
    return len(chosen)


def delete(conn: Any, table: str, count: int, rng: random.Random) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT user_id FROM `{table}` ORDER BY user_id")
        ids = [row[0] for row in cur.fetchall()]
        chosen = rng.sample(ids, min(count, len(ids)))
        cur.executemany(f"DELETE FROM `{table}` WHERE user_id=%s", [(i,) for i in chosen])
    return len(chosen)


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m producers.users",
        description="Insert generated users into MySQL's users table (created if missing), "
        "or update/delete some existing ones. Connection from MYSQL_HOST, MYSQL_PORT, "
        "MYSQL_USER, MYSQL_PASSWORD (or MYSQL_PASSWORD_FILE), MYSQL_DATABASE.",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=env_int("USERS_COUNT", 200),
        help="users to insert (env USERS_COUNT; default 200, as the original)",
    )
    parser.add_argument(
        "--null-share",
        type=float,
        default=float(env("USERS_NULL_SHARE", "0.05")),
        help="share of NULLs in each nullable column (env USERS_NULL_SHARE; default 0.05)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed: the same seed gives the same users"
    )
    parser.add_argument(
        "--countries",
        default=env("USERS_COUNTRIES", COUNTRIES),
        help="comma-separated countries (env USERS_COUNTRIES)",
    )
    parser.add_argument("--genders", default="Male,Female", help="comma-separated genders")
    parser.add_argument(
        "--tiers",
        default="Platinum,Gold,Silver,Standard",
        help="comma-separated subscription tiers",
    )
    parser.add_argument("--min-age", type=int, default=20)
    parser.add_argument("--max-age", type=int, default=60)
    parser.add_argument(
        "--update",
        type=int,
        default=0,
        metavar="N",
        help="instead of inserting, give N random existing users new values",
    )
    parser.add_argument(
        "--delete",
        type=int,
        default=0,
        metavar="N",
        help="instead of inserting, delete N random existing users",
    )
    parser.add_argument(
        "--table", default=DEFAULT_TABLE, help="table name (env USERS_TABLE; default Users)"
    )
    parser.add_argument("--batch", type=int, default=1000, help="rows per INSERT batch")
    args = parser.parse_args(argv)
    setup_logging()
    if not 0 <= args.null_share <= 1:
        parser.error("--null-share must be between 0 and 1")
    spec = UserSpec(
        _list(args.countries),
        _list(args.genders),
        _list(args.tiers),
        args.min_age,
        args.max_age,
        args.null_share,
    )
    rng = random.Random(args.seed)
    table = table_name(args.table)
    conn = connect()
    ensure_table(conn, table)
    if args.update or args.delete:
        if args.update:
            logger.info("updated %d users", update(conn, table, args.update, spec, rng))
        if args.delete:
            logger.info("deleted %d users", delete(conn, table, args.delete, rng))
        return
    insert(conn, table, generate(args.count, spec, rng), args.batch)
    logger.info("inserted %d users into %s", args.count, table)


if __name__ == "__main__":
    main()
