"""Task functions for benchmarks: importable by module path, so they travel as msgpack."""


async def noop(i: int) -> int:
    return i


def noop_sync(i: int) -> int:
    return i


def cpu_work(n: int = 20_000) -> int:
    """A fixed amount of pure-Python work (the same for every worker type)."""
    return sum(i * i for i in range(n))
