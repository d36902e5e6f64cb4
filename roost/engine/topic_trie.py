"""A trie of topic levels, shared by the subscription index and the retained store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class Node(Generic[V]):
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[str, Node[V]] = {}
        self.value: V | None = None


class TopicTrie(Generic[V]):
    """Maps topic filters (or names) level by level to one value each."""

    def __init__(self) -> None:
        self.root: Node[V] = Node()

    def get(self, key: str) -> V | None:
        node: Node[V] | None = self.root
        for level in key.split("/"):
            node = node.children.get(level) if node else None
            if node is None:
                return None
        return node.value if node else None

    def setdefault(self, key: str, factory: type[V]) -> V:
        node = self.root
        for level in key.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = Node()
            node = child
        if node.value is None:
            node.value = factory()
        return node.value

    def set(self, key: str, value: V) -> None:
        node = self.root
        for level in key.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = Node()
            node = child
        node.value = value

    def discard(self, key: str) -> V | None:
        """Remove ``key``'s value and prune empty nodes; return the old value."""
        path: list[tuple[Node[V], str]] = []
        node = self.root
        for level in key.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            path.append((node, level))
            node = child
        old, node.value = node.value, None
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.value is not None or child.children:
                break
            del parent.children[level]
        return old

    def match_filters(self, topic: str) -> Iterator[V]:
        """Values stored under filters that match the topic name ``topic``."""
        levels = topic.split("/")
        dollar = topic.startswith("$")
        stack: list[tuple[Node[V], int]] = [(self.root, 0)]
        n = len(levels)
        while stack:
            node, i = stack.pop()
            children = node.children
            # A leading wildcard never matches a topic beginning with '$' (4.7.2).
            wild = not (dollar and i == 0)
            if wild:
                hash_node = children.get("#")
                if hash_node is not None and hash_node.value is not None:
                    yield hash_node.value
            if i == n:
                if node.value is not None:
                    yield node.value
                continue
            exact = children.get(levels[i])
            if exact is not None:
                stack.append((exact, i + 1))
            if wild:
                plus = children.get("+")
                if plus is not None:
                    stack.append((plus, i + 1))

    def match_names(self, topic_filter: str) -> Iterator[V]:
        """Values stored under topic names that ``topic_filter`` matches."""
        levels = topic_filter.split("/")
        n = len(levels)
        stack: list[tuple[Node[V], int]] = [(self.root, 0)]
        while stack:
            node, i = stack.pop()
            if i == n:
                if node.value is not None:
                    yield node.value
                continue
            level = levels[i]
            if level == "#":
                yield from self._all_below(node, skip_dollar=i == 0)
            elif level == "+":
                for name, child in node.children.items():
                    if not (i == 0 and name.startswith("$")):
                        stack.append((child, i + 1))
            else:
                exact = node.children.get(level)
                if exact is not None:
                    stack.append((exact, i + 1))

    @staticmethod
    def _all_below(node: Node[V], skip_dollar: bool) -> Iterator[V]:
        # '#' also matches the parent level itself ("a/#" matches "a").
        if node.value is not None:
            yield node.value
        stack = [child for name, child in node.children.items()
                 if not (skip_dollar and name.startswith("$"))]
        while stack:
            current = stack.pop()
            if current.value is not None:
                yield current.value
            stack.extend(current.children.values())
