"""An instance's identity: a ``transactional.id`` that outlives a crash of its process.

Quix Streams gives each process a random ``transactional.id``. A process killed mid-transaction
then leaves that transaction open, and nothing that comes after can fence it: its partitions'
new owner waits (the broker answers its offset fetch with "unstable offsets") and consumers of
the outputs stop at the open transaction, until the broker times it out (librdkafka's
``transaction.timeout.ms``, 60 s, plus the broker's abort sweep). Kafka Streams avoids this by
deriving the id from a process id kept in the state directory; so do we. A restarted instance
registers the same id, and the broker aborts the dead one's transaction at once.

The id is only safe if one live process uses it, so the state directory is locked (as Kafka
Streams locks it): a second process on the same directory stops with a clear error instead of
fencing the first.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

#: Open file descriptors of the claims this process holds; the locks go when the process does.
_held: list[int] = []


class StateDirInUse(RuntimeError):
    """Another live process holds this state directory for the same consumer group."""


def claim(state_dir: str | Path, consumer_group: str) -> str:
    """Lock ``state_dir`` for ``consumer_group`` in this process; this instance's
    ``transactional.id`` (the same after every restart on the same directory)."""
    path = Path(state_dir) / f"{consumer_group.replace(os.sep, '_')}.instance"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateDirInUse(
            f"state directory {state_dir} is in use by another instance of consumer group "
            f"{consumer_group!r} ({path} is locked); give each instance its own --state-dir"
        ) from None
    process_id = os.read(fd, 64).decode(errors="replace").strip()
    if not process_id:
        process_id = uuid.uuid4().hex
        os.write(fd, process_id.encode())
        os.fsync(fd)
    _held.append(fd)
    return f"{consumer_group}-{process_id}"
