"""The subscription trie against a reference matcher, and shared-group turn taking."""

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.engine.message import Message
from roost.engine.subscriptions import SharedGroup, Subscription, SubscriptionIndex
from roost.engine.topic_trie import TopicTrie
from roost.mqtt.topics import matches


@dataclass
class FakeSubscriber:
    """A stand-in subscriber that records deliveries (the index only needs key/online)."""

    key: str
    online: bool = True
    got: list[Message] = field(default_factory=list)

    def deliver(self, message: Message, subscriptions: list[Subscription]) -> None:
        self.got.append(message)

    def deliver_shared(self, message: Message, sub: Subscription) -> None:
        self.got.append(message)


levels = st.sampled_from(["a", "b", "c", "$s", ""])
topics = st.lists(levels, min_size=1, max_size=4).map("/".join)
filters = st.lists(st.sampled_from(["a", "b", "$s", "+", ""]), min_size=1, max_size=4).map(
    lambda parts: parts).flatmap(
    lambda parts: st.sampled_from(["/".join(parts), "/".join(parts + ["#"]), "#"]))


@settings(max_examples=300)
@given(st.lists(filters, max_size=8, unique=True), topics)
def test_trie_matches_like_the_reference(filter_list, topic):
    trie: TopicTrie[str] = TopicTrie()
    for f in filter_list:
        trie.set(f, f)
    assert sorted(trie.match_filters(topic)) == sorted(f for f in filter_list if matches(f, topic))


@settings(max_examples=300)
@given(st.lists(topics, max_size=8, unique=True), filters)
def test_trie_finds_names_like_the_reference(topic_list, topic_filter):
    trie: TopicTrie[str] = TopicTrie()
    for t in topic_list:
        trie.set(t, t)
    assert sorted(trie.match_names(topic_filter)) == sorted(
        t for t in topic_list if matches(topic_filter, t))


def test_overlapping_subscriptions_grouped_per_subscriber():
    index = SubscriptionIndex()
    s = FakeSubscriber("s")
    index.add(s, Subscription("a/+", 1), "a/+")
    index.add(s, Subscription("a/#", 2), "a/#")
    result, groups = index.match("a/b")
    assert list(result) == ["s"] and groups == ()
    assert sorted(sub.qos for sub in result["s"][1]) == [1, 2]


def test_remove_prunes_and_clears_cache():
    index = SubscriptionIndex()
    s = FakeSubscriber("s")
    index.add(s, Subscription("x/y", 0), "x/y")
    assert index.match("x/y")[0]
    assert index.remove("s", "x/y", None)
    assert index.match("x/y") == ({}, ())
    assert index.count == 0
    assert not index.remove("s", "x/y", None)


def test_shared_group_prefers_online_members_in_turn():
    group = SharedGroup()
    a, b, c = FakeSubscriber("a"), FakeSubscriber("b", online=False), FakeSubscriber("c")
    for m in (a, b, c):
        group.members[m.key] = (m, Subscription("$share/g/t", 0, share_group="g"))
    picks = [group.pick()[0].key for _ in range(6)]  # type: ignore[index]
    assert picks == ["a", "c", "a", "c", "a", "c"]
    a.online = c.online = False
    assert group.pick()[0].key in {"a", "b", "c"}  # type: ignore[index]
