"""What is signed: a payload is bound to its task, and a local store signs its payloads with a key
of its own when none is configured (ARCHITECTURE section 4).

The attacks write straight into the SQLite file, as anyone who can write to it could: a signed
payload copied into another task's row, a crafted pickle in a task or a result.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from omniq import AsyncOmniQ, TaskStatus
from omniq.backend import create_backend
from omniq.exceptions import ConfigError, SerializationError, SignatureError
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.task import Task
from omniq.serialization import Serializer
from omniq.serialization.envelope import FLAG_SIGNED, FORMAT_DILL, FORMAT_MSGPACK
from omniq.serialization.signing import local_key
from tests import tasks_fixture as tf


class _Pwn:
    """A pickle that runs a command when it is loaded."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.mark}",))


def _crafted_pickle(mark: Path) -> bytes:
    return bytes((FORMAT_DILL,)) + pickle.dumps(_Pwn(mark))


# -- a payload is bound to its task ----------------------------------------------------------------
def test_a_signed_task_payload_read_as_another_task_is_refused() -> None:
    serializer = Serializer("k3y", local=False)
    payload = serializer.encode_task(Task(func=tf.add, args=(1, 2), id="original"))
    assert serializer.decode_task(payload, "original").id == "original"
    with pytest.raises(SignatureError, match=r"'copy'.*belongs to task 'original'"):
        serializer.decode_task(payload, "copy")


def test_a_signed_result_payload_read_as_another_tasks_result_is_refused() -> None:
    serializer = Serializer("k3y", local=False)
    payload = serializer.encode_result(TaskResult(task_id="original", status=ResultStatus.SUCCESS))
    assert serializer.decode_result(payload, "original").task_id == "original"
    with pytest.raises(SignatureError, match=r"'copy'.*result of task 'original'"):
        serializer.decode_result(payload, "copy")


async def test_a_payload_copied_into_another_row_goes_dead_instead_of_running_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "copy.db"
    oq = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{db}"))
    try:
        tf.reset()
        original = await oq.enqueue(tf.record, args=("original",))
        victim = await oq.enqueue(tf.record, args=("victim",), run_in=3600)
        with sqlite3.connect(db) as raw:
            raw.execute(
                "UPDATE omniq_tasks SET payload = (SELECT payload FROM omniq_tasks WHERE id = ?),"
                " ready_at = 0, eta = NULL WHERE id = ?",
                (original, victim),
            )
        await oq.start_worker()
        assert await oq.get_result(original, timeout=20) == "original"
        copied = await oq.get_task_result(victim, timeout=20)
        assert copied is not None
        assert copied.error_type == "SerializationError"
        assert "belongs to task" in (copied.error or "")
        task = await oq.get_task(victim)
        assert task is not None
        assert task.status is TaskStatus.DEAD
        assert dict(tf.calls) == {"original": 1}  # the copy did not run it again
    finally:
        await oq.stop_worker()
        await oq.close()


# -- a local store signs with its own key --------------------------------------------------------
async def test_sqlite_without_a_key_makes_one_beside_the_file_and_signs(tmp_path: Path) -> None:
    db = tmp_path / "signed.db"
    oq = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{db}"))
    try:
        task_id = await oq.enqueue(tf.add, args=(1, 2))
    finally:
        await oq.close()
    key_file = tmp_path / "signed.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with sqlite3.connect(db) as raw:
        (payload,) = raw.execute(
            "SELECT payload FROM omniq_tasks WHERE id = ?", (task_id,)
        ).fetchone()
    assert payload[0] == FORMAT_MSGPACK | FLAG_SIGNED
    # another process opening the store uses the same key: it reads what this one wrote
    again = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{db}"))
    try:
        stored = await again.get_task(task_id)
        assert stored is not None
        assert stored.args == (1, 2)
    finally:
        await again.close()


def test_racing_processes_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "store.db.key"
    first = local_key(path)
    assert local_key(path) == first
    assert len(first) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["store.db.key"]  # no draft left behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660])
async def test_a_key_file_open_to_other_users_is_refused_at_connect(
    tmp_path: Path, mode: int
) -> None:
    """Whoever can read the store's key signs payloads its workers trust (dill: code), so a key
    file other users may read or change fails the connect, naming the file, its mode and the
    fix, instead of being used; 0600 (as made) and 0640 (a group sharing the store) are fine."""
    db = tmp_path / "open.db"
    key_file = tmp_path / "open.db.key"
    local_key(key_file)
    key_file.chmod(mode)
    oq = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{db}"))
    try:
        with pytest.raises(ConfigError) as refused:
            await oq.enqueue(tf.add, args=(1, 2))
    finally:
        await oq.close()
    message = str(refused.value)
    assert repr(str(key_file)) in message
    assert f"mode {mode:04o}" in message
    assert f"chmod 600 {key_file}" in message
    for fine in (0o600, 0o640):
        key_file.chmod(fine)
        again = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{db}"))
        try:
            task_id = await again.enqueue(tf.add, args=(1, 2))
            stored = await again.get_task(task_id)
            assert stored is not None
            assert stored.args == (1, 2)
        finally:
            await again.close()


async def test_a_configured_key_wins_over_the_stores_own(tmp_path: Path) -> None:
    db = tmp_path / "configured.db"
    backend = create_backend(url=f"sqlite:///{db}", secret_key="configured-key")
    oq = AsyncOmniQ.from_backend(backend)
    try:
        task_id = await oq.enqueue(tf.add, args=(1, 2))
    finally:
        await oq.close()
    assert not (tmp_path / "configured.db.key").exists()
    with sqlite3.connect(db) as raw:
        (payload,) = raw.execute(
            "SELECT payload FROM omniq_tasks WHERE id = ?", (task_id,)
        ).fetchone()
    assert Serializer("configured-key").decode_task(payload, task_id).args == (1, 2)


async def test_a_crafted_pickle_in_a_task_row_does_not_run_in_the_worker(tmp_path: Path) -> None:
    db = tmp_path / "pickled.db"
    mark = tmp_path / "pwned"
    oq = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{db}"))
    try:
        task_id = await oq.enqueue(tf.add, args=(1, 2), run_in=3600)
        with sqlite3.connect(db) as raw:
            raw.execute(
                "UPDATE omniq_tasks SET payload = ?, ready_at = 0, eta = NULL WHERE id = ?",
                (_crafted_pickle(mark), task_id),
            )
        await oq.start_worker()
        result = await oq.get_task_result(task_id, timeout=20)
        assert result is not None
        assert result.error_type == "SerializationError"
        assert "unsigned dill payload refused" in (result.error or "")
        assert not mark.exists()
    finally:
        await oq.stop_worker()
        await oq.close()


async def test_a_crafted_pickle_in_a_result_row_does_not_run_in_get_result(
    tmp_path: Path,
) -> None:
    db = tmp_path / "result.db"
    mark = tmp_path / "pwned"
    oq = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{db}"))
    try:
        await oq.start_worker()
        task_id = await oq.enqueue(tf.add, args=(1, 2))
        assert await oq.get_result(task_id, timeout=20) == 3
        await oq.stop_worker()
        with sqlite3.connect(db) as raw:
            raw.execute(
                "UPDATE omniq_results SET payload = ? WHERE task_id = ?",
                (_crafted_pickle(mark), task_id),
            )
        fresh = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{db}"))
        try:
            with pytest.raises(SerializationError, match="unsigned dill payload refused"):
                await fresh.get_task_result(task_id)
        finally:
            await fresh.close()
        assert not mark.exists()
    finally:
        await oq.close()


def test_unsigned_msgpack_stored_before_the_key_existed_still_reads(tmp_path: Path) -> None:
    payload = Serializer().encode_task(Task(func=tf.add, args=(1, 2), id="old"))
    assert payload[0] == FORMAT_MSGPACK
    reader = Serializer()
    reader.use_local_key(tmp_path / "old.db.key")
    assert reader.decode_task(payload, "old").args == (1, 2)
    assert reader.signed


async def test_a_file_store_without_a_key_signs_with_one_kept_in_its_folder(
    tmp_path: Path,
) -> None:
    oq = AsyncOmniQ.from_backend(create_backend(url=f"file://{tmp_path / 'files'}"))
    try:
        task_id = await oq.enqueue(tf.add, args=(1, 2))
        stored = await oq.get_task(task_id)
        assert stored is not None
        assert stored.args == (1, 2)
    finally:
        await oq.close()
    key_file = tmp_path / "files" / ".omniq.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = AsyncOmniQ.from_backend(create_backend(url=f"file://{tmp_path / 'files'}"))
    try:
        found = await again.get_task(task_id)  # another opener shares the folder's key
        assert found is not None
        assert found.args == (1, 2)
    finally:
        await again.close()
