import gc
from collections import deque

from hypothesis import given, settings, strategies as st

from laneway.core import CHUNK, BufferedEvent, ChunkedFifo, DualBucket, TenantConfig

ops = st.lists(st.one_of(st.integers(0, 10**6).map(lambda v: ("append", v)), st.just(("pop", None))), max_size=400)


@given(ops)
def test_behaves_like_a_deque(operations: list[tuple[str, int | None]]) -> None:
    fifo: ChunkedFifo[int] = ChunkedFifo()
    model: deque[int] = deque()
    for op, value in operations:
        if op == "append":
            fifo.append(value)  # type: ignore[arg-type]
            model.append(value)  # type: ignore[arg-type]
        elif model:
            assert fifo.popleft() == model.popleft()
        assert len(fifo) == len(model) and bool(fifo) == bool(model)
        if model:
            assert fifo.first() == model[0]
    assert list(fifo) == list(model)
    assert list(reversed(fifo)) == list(reversed(model))
    fifo.clear()
    assert not fifo and list(fifo) == []


def test_popping_an_empty_fifo_raises() -> None:
    import pytest

    with pytest.raises(IndexError):
        ChunkedFifo().popleft()
    with pytest.raises(IndexError):
        ChunkedFifo().first()


def test_full_chunks_of_untracked_entries_leave_the_gc_alone() -> None:
    bucket = DualBucket(TenantConfig(regular_max_events=10_000))
    for seq in range(1, 5 * CHUNK + 2):
        bucket.offer(BufferedEvent(seq, 0, 0, "T", b"x"), 0)
    gc.collect()
    chunks = list(bucket.regular._chunks)
    assert len(chunks) == 5
    assert not any(gc.is_tracked(chunk) for chunk in chunks)
    # A popped entry is not kept alive by a partly consumed chunk.
    bucket.regular.popleft()
    assert len(bucket.regular._chunks[0]) == CHUNK - 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["extend", "append", "pop"]), st.integers(min_value=0, max_value=300))))
def test_extend_behaves_like_repeated_appends(ops: list[tuple[str, int]]) -> None:
    fifo: ChunkedFifo[int] = ChunkedFifo()
    model: list[int] = []
    counter = 0
    for op, n in ops:
        if op == "extend":
            items = list(range(counter, counter + n))
            counter += n
            fifo.extend(items)
            model += items
        elif op == "append":
            fifo.append(counter)
            model.append(counter)
            counter += 1
        else:
            for _ in range(min(n, len(model))):
                assert fifo.popleft() == model.pop(0)
        assert len(fifo) == len(model)
    assert list(fifo) == model
    assert list(reversed(fifo)) == model[::-1]
