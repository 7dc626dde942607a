import threading
from concurrent.futures import Future

import pytest

from laneway.actors import OneWaiter, Ticket
from laneway.core import BucketFull, Receipt, StorageError


def receipt(seq: int) -> Receipt:
    return Receipt("t", "s", seq, 0, seq)


def test_single_ticket_resolves_with_the_receipt() -> None:
    released: list[str] = []
    f: Future[Receipt] = Future()
    t = Ticket(1, f, single=True, on_done=lambda: released.append("done"))
    t.resolve(0, receipt(1))
    assert f.result(0) == receipt(1)
    assert released == ["done"]


def test_batch_ticket_waits_for_every_item_in_any_order() -> None:
    f: Future[list[Receipt]] = Future()
    t = Ticket(3, f, single=False)
    t.resolve(2, receipt(3))
    t.resolve_many([0], [receipt(1)])
    assert not f.done()
    t.resolve(1, receipt(2))
    assert f.result(0) == [receipt(1), receipt(2), receipt(3)]


def test_rejections_surface_as_bucket_full_with_the_written_receipts() -> None:
    f: Future[list[Receipt]] = Future()
    t = Ticket(3, f, single=False)
    t.resolve(0, receipt(1))
    t.reject(1)
    t.resolve(2, receipt(2))
    with pytest.raises(BucketFull, match="1 of 3 event") as info:
        f.result(0)
    assert info.value.receipts == [receipt(1), None, receipt(2)]


def test_fail_settles_once_and_later_outcomes_are_ignored() -> None:
    released: list[int] = []
    f: Future[Receipt] = Future()
    t = Ticket(2, f, single=False, on_done=lambda: released.append(1))
    t.fail(StorageError("boom"))
    t.resolve(0, receipt(1))
    t.reject(1)
    t.fail(StorageError("again"))
    with pytest.raises(StorageError, match="boom"):
        f.result(0)
    assert released == [1]


def test_a_one_waiter_blocks_until_the_ticket_settles_and_then_always_answers() -> None:
    waiter = OneWaiter()
    t = Ticket(1, waiter, single=True)
    answered: list[Receipt] = []
    ready = threading.Event()

    def wait() -> None:
        ready.set()
        answered.append(waiter.result())

    thread = threading.Thread(target=wait)
    thread.start()
    assert ready.wait(10)
    assert answered == []
    t.resolve(0, receipt(1))
    thread.join(10)
    assert answered == [receipt(1)]
    assert waiter.result() == receipt(1)  # asked again: the same answer


def test_a_one_waiter_raises_the_tickets_error_every_time() -> None:
    waiter = OneWaiter()
    Ticket(2, waiter, single=False).fail(StorageError("disk on fire"))
    for _ in range(2):
        with pytest.raises(StorageError, match="disk on fire"):
            waiter.result()
