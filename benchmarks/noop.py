"""Task functions for benchmarks: importable by module path, so they travel as msgpack."""


async def noop(i: int) -> int:
    return i


def noop_sync(i: int) -> int:
    return i
