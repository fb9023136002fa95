from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reachproof.ports import PortRange, PortSet, Protocol, parse_ports


def test_parse_merges_and_sorts() -> None:
    ports = PortSet.parse("8080,22,20-23,24")
    assert str(ports) == "20-24,8080"
    assert len(ports) == 6


@pytest.mark.parametrize("text", ["0", "65536", "10-5", "", "a", "1,,2", "5-"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        PortSet.parse(text)


def test_full_range_stays_one_range() -> None:
    ports = PortSet.parse("1-65535")
    assert ports.ranges == (PortRange(1, 65535),)
    assert len(ports) == 65535


def test_difference() -> None:
    assert str(PortSet.parse("1-100").difference(PortSet.parse("10-20,50"))) == "1-9,21-49,51-100"
    assert not PortSet.parse("5").difference(PortSet.parse("1-10"))


def test_parse_ports_continues_protocol() -> None:
    items = parse_ports("tcp/443,8443, udp/53")
    assert [(i.protocol, str(i.ports)) for i in items] == [
        (Protocol.TCP, "443,8443"),
        (Protocol.UDP, "53"),
    ]


def test_sample_is_seeded_and_bounded() -> None:
    ports = PortSet.parse("1-65535")
    a = ports.sample(100, seed=7)
    assert a == ports.sample(100, seed=7)
    assert len(a) == 100
    assert a != ports.sample(100, seed=8)
    assert PortSet.parse("1-10").sample(100, seed=1) == PortSet.parse("1-10")


port_lists = st.lists(st.integers(1, 65535), max_size=50)


@given(port_lists, port_lists)
def test_set_algebra_matches_python_sets(a: list[int], b: list[int]) -> None:
    pa, pb = PortSet.of(a), PortSet.of(b)
    assert set(pa) == set(a)
    assert set(pa.union(pb)) == set(a) | set(b)
    assert set(pa.difference(pb)) == set(a) - set(b)
    assert set(pa.intersection(pb)) == set(a) & set(b)
    assert pa.difference(pb) == PortSet.of(set(a) - set(b))
    assert len(pa) == len(set(a))
