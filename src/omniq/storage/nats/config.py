"""Options of the NATS JetStream backend (one struct serves all three components)."""

from __future__ import annotations

from omniq.models.config import ConfigStruct


class NATSConfig(ConfigStruct):
    """Connection and naming of the NATS backend (seeds 003/004).

    ``servers`` lists every node of a cluster (``["nats://a:4222", "nats://b:4222"]``); ``url``
    is one ``nats://`` / ``tls://`` URL (``nats://user:password@host:4222``,
    ``nats://token@host:4222``, several hosts comma-separated) and takes precedence over
    ``servers``. Credentials: ``user``/``password``, ``token``, ``nkeys_seed`` (a seed file) or
    ``user_credentials`` (a ``.creds`` file). TLS: ``tls=True`` or the ``tls://`` scheme, with
    ``tls_ca_file``, ``tls_cert_file`` and ``tls_key_file`` for a private CA and client
    certificates.

    Names: every project owns one work-queue stream ``<stream_prefix>_<project>`` with one
    subject per named queue, ``<subject_prefix>.<project>.q.<queue>``, one KV bucket for the
    task records and schedules (``<bucket_prefix>_<project>_TASKS``), one for results
    (``..._RESULTS``, entries expire after ``result_ttl`` seconds) and one events stream
    (``..._EVENTS``). ``replicas`` is the JetStream replication factor of all of them (3 on a
    three-node cluster, so a node lost loses nothing). ``ack_wait`` is the server-side lease: a
    claim not acknowledged nor renewed for that long is delivered again; it must be at least the
    longest lease a worker asks for.
    """

    servers: list[str] | None = None
    url: str | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkeys_seed: str | None = None
    user_credentials: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    connect_timeout: float = 5.0
    request_timeout: float = 5.0
    stream_prefix: str = "OMNIQ"
    subject_prefix: str = "omniq"
    bucket_prefix: str = "OMNIQ"
    replicas: int = 1
    ack_wait: float | None = None
    task_record_ttl: float = 7 * 86_400.0
    events_max_age: float = 7 * 86_400.0


__all__ = ["NATSConfig"]
