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

    def deliver(self, message: Message, subscriptions: list[Subscription],
                flow: object = None) -> None:
        self.got.append(message)

    def deliver_shared(self, message: Message, sub: Subscription, flow: object = None) -> None:
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
    group = SharedGroup("g", "t")
    a, b, c = FakeSubscriber("a"), FakeSubscriber("b", online=False), FakeSubscriber("c")
    for m in (a, b, c):
        group.join(m, Subscription("$share/g/t", 0, share_group="g"))
    picks = [group.pick()[0].key for _ in range(6)]  # type: ignore[index]
    assert picks == ["a", "c", "a", "c", "a", "c"]
    # Never the excluded one (the source a message came from).
    assert {group.pick(a)[0].key for _ in range(4)} == {"c"}  # type: ignore[index]
    a.online = c.online = False
    assert group.pick()[0].key in {"a", "b", "c"}  # type: ignore[index]
    assert group.pick(b)[0].key in {"a", "c"}  # type: ignore[index]
    assert group.leave("b") and not group.leave("b")
    assert group.key == "$share/g/t"
    assert SharedGroup("g", "t").pick() is None


# -- The cache against a brute-force matcher ----------------------------------------

subscriber_keys = st.sampled_from(["s1", "s2", "s3"])
groups = st.sampled_from([None, None, "g", "h"])
operations = st.lists(st.one_of(
    st.tuples(st.just("add"), subscriber_keys, filters, groups, st.integers(0, 2)),
    st.tuples(st.just("remove"), subscriber_keys, filters, groups),
    st.tuples(st.just("match"), topics),
), max_size=40)


def observed(index: SubscriptionIndex, topic: str) -> tuple[dict, set]:
    plain, found_groups = index.match(topic)
    return ({key: sorted((s.topic_filter, s.qos) for s in subs)
             for key, (_, subs) in plain.items()},
            {(g.topic_filter, g.name, tuple(sorted(g.members))) for g in found_groups})


def expected(model: dict, topic: str) -> tuple[dict, set]:
    plain: dict[str, list] = {}
    found_groups: dict[tuple[str, str], list[str]] = {}
    for (key, f, group), qos in model.items():
        if not matches(f, topic):
            continue
        if group is None:
            plain.setdefault(key, []).append((f, qos))
        else:
            found_groups.setdefault((f, group), []).append(key)
    return ({k: sorted(v) for k, v in plain.items()},
            {(f, g, tuple(sorted(keys))) for (f, g), keys in found_groups.items()})


@settings(max_examples=400)
@given(operations, st.lists(topics, min_size=1, max_size=6))
def test_cached_answers_follow_every_change(ops, probes):
    """Whatever the order of subscribes, unsubscribes and matches (which fill the
    cache), every answer equals a brute-force match over the live subscriptions."""
    index = SubscriptionIndex()
    subscribers = {k: FakeSubscriber(k) for k in ("s1", "s2", "s3")}
    model: dict[tuple[str, str, str | None], int] = {}
    for op in ops:
        if op[0] == "add":
            _, key, f, group, qos = op
            full = f if group is None else f"$share/{group}/{f}"
            replaced = index.add(subscribers[key], Subscription(full, qos, share_group=group), f)
            assert replaced == ((key, f, group) in model)
            model[(key, f, group)] = qos
        elif op[0] == "remove":
            _, key, f, group = op
            assert index.remove(key, f, group) == ((key, f, group) in model)
            model.pop((key, f, group), None)
        else:
            assert observed(index, op[1]) == expected(model, op[1])
        for topic in probes:
            assert observed(index, topic) == expected(model, topic)
    assert index.count == len(model)


def test_a_change_keeps_cached_answers_for_topics_it_does_not_match():
    index = SubscriptionIndex()
    s = FakeSubscriber("s")
    index.add(s, Subscription("a/b", 0), "a/b")
    first, _ = index.match("a/b")
    index.match("c/d")
    index.add(s, Subscription("c/+", 0), "c/+")
    assert index.match("a/b")[0] is first  # still the cached answer
    assert list(index.match("c/d")[0]) == ["s"]
    index.add(FakeSubscriber("t"), Subscription("a/#", 0), "a/#")
    assert sorted(index.match("a/b")[0]) == ["s", "t"]


# -- Interest: first subscriber of a filter, last one gone ---------------------------


@dataclass
class InterestLog:
    events: list[tuple[str, str, str | None]] = field(default_factory=list)

    def interest_gained(self, topic_filter: str, share_group: str | None) -> None:
        self.events.append(("+", topic_filter, share_group))

    def interest_lost(self, topic_filter: str, share_group: str | None) -> None:
        self.events.append(("-", topic_filter, share_group))


def test_interest_is_reported_on_first_subscriber_and_last_one_gone():
    index = SubscriptionIndex()
    log = InterestLog()
    index.listeners.append(log)
    a, b = FakeSubscriber("a"), FakeSubscriber("b")
    index.add(a, Subscription("x/+", 0), "x/+")
    index.add(b, Subscription("x/+", 1), "x/+")
    index.add(a, Subscription("x/+", 2), "x/+")  # a replacement: no news
    index.add(a, Subscription("$share/g/x/+", 1, share_group="g"), "x/+")
    index.add(b, Subscription("$share/g/x/+", 1, share_group="g"), "x/+")
    assert log.events == [("+", "x/+", None), ("+", "x/+", "g")]
    log.events.clear()
    index.remove("a", "x/+", None)
    index.remove("a", "x/+", "g")
    index.remove("zz", "x/+", None)  # not there: no news
    assert log.events == []
    index.remove("b", "x/+", None)
    assert log.events == [("-", "x/+", None)]
    index.remove("b", "x/+", "g")
    assert log.events == [("-", "x/+", None), ("-", "x/+", "g")]
    assert index.count == 0


@settings(max_examples=200)
@given(operations)
def test_interest_events_track_the_live_filters(ops):
    """Replaying the events gives exactly the (filter, group) pairs that have
    subscribers, and no pair is gained twice without being lost in between."""
    index = SubscriptionIndex()
    log = InterestLog()
    index.listeners.append(log)
    subscribers = {k: FakeSubscriber(k) for k in ("s1", "s2", "s3")}
    model: set[tuple[str, str, str | None]] = set()
    for op in ops:
        if op[0] == "add":
            _, key, f, group, qos = op
            full = f if group is None else f"$share/{group}/{f}"
            index.add(subscribers[key], Subscription(full, qos, share_group=group), f)
            model.add((key, f, group))
        elif op[0] == "remove":
            _, key, f, group = op
            index.remove(key, f, group)
            model.discard((key, f, group))
    live: set[tuple[str, str | None]] = set()
    for sign, f, group in log.events:
        if sign == "+":
            assert (f, group) not in live
            live.add((f, group))
        else:
            assert (f, group) in live
            live.remove((f, group))
    assert live == {(f, group) for _, f, group in model}
