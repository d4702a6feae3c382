"""Signals that call their receivers in the order they were connected.

blinker keeps a signal's receivers in a set, so by default they run in whatever order their
ids hash to. The app factory connects receivers in the order they must run (the rewards
engine pays before outbound webhooks describe the referral), and these signals keep it.
"""

from collections.abc import Hashable, Iterable, Iterator

from blinker import NamedSignal


class ConnectionOrder:
    """The set operations blinker uses on its receiver ids, remembering insertion order."""

    def __init__(self, items: Iterable[Hashable] = ()):
        self._items = dict.fromkeys(items)

    def add(self, item: Hashable) -> None:
        self._items[item] = None

    def discard(self, item: Hashable) -> None:
        self._items.pop(item, None)

    def copy(self) -> "ConnectionOrder":
        return ConnectionOrder(self._items)

    def __or__(self, other: Iterable[Hashable]) -> "ConnectionOrder":
        return ConnectionOrder([*self._items, *other])

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


class OrderedSignal(NamedSignal):
    set_class = ConnectionOrder
