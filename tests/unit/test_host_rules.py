"""The host's packet-filter rules of the docker backend's user network (pure)."""

from hub_config.host_rules import (
    Rule,
    iptables_args,
    parse_listing,
    plan,
    tagged_bridge,
    wanted_rules,
)

WANTED = wanted_rules("br-abc", "dlhub", "172.18.0.1", [8081, 8095, 8081])

# the rules as `iptables -S` prints them back (Docker's own rules around them);
# {R}: replies, {C}: the tag, {L}: link-local, {P}: the tcp port match
LISTING_INPUT = """-P INPUT ACCEPT
-A INPUT -i br-abc {R} {C} -j ACCEPT
-A INPUT -d 172.18.0.1/32 -i br-abc {P} 8081 {C} -j ACCEPT
-A INPUT -d 172.18.0.1/32 -i br-abc {P} 8095 {C} -j ACCEPT
-A INPUT -i br-abc -p tcp {C} -j REJECT --reject-with tcp-reset
-A INPUT -i br-abc {C} -j REJECT --reject-with icmp-port-unreachable
-A INPUT -i eth0 {P} 22 -j ACCEPT
"""
LISTING_USER = """-N DOCKER-USER
-A DOCKER-USER -i br-abc {R} {C} -j RETURN
-A DOCKER-USER {L} -p tcp {C} -j REJECT --reject-with tcp-reset
-A DOCKER-USER {L} {C} -j REJECT --reject-with icmp-port-unreachable
-A DOCKER-USER -j RETURN
"""
WORDS = {
    "{R}": "-m conntrack --ctstate RELATED,ESTABLISHED",
    "{C}": '-m comment --comment "dlhub:br-abc:dlhub"',
    "{L}": "-d 169.254.0.0/16 -i br-abc",
    "{P}": "-p tcp -m tcp --dport",
}


def listed(text: str) -> list[Rule]:
    for short, words in WORDS.items():
        text = text.replace(short, words)
    return parse_listing(text)


CURRENT = listed(LISTING_INPUT) + listed(LISTING_USER)
OTHERS = [r for r in CURRENT if tagged_bridge(r) is None]


def test_containers_reach_only_the_allowed_ports_on_the_host_and_nothing_link_local():
    inputs = [r.args for r in WANTED if r.chain == "INPUT"]
    # every rule is about packets that come in on the network's interface, and tagged
    assert all(r.args[r.args.index("-i") + 1] == "br-abc" for r in WANTED)
    assert all(tagged_bridge(r) == "br-abc" for r in WANTED)
    # replies first, then the two ports (once each) on the gateway, then refusal of the rest
    assert inputs[0][-2:] == ("-j", "ACCEPT") and "RELATED,ESTABLISHED" in inputs[0]
    allowed = [a[a.index("--dport") + 1] for a in inputs if "--dport" in a]
    assert allowed == ["8081", "8095"]
    assert all(a[a.index("-d") + 1] == "172.18.0.1/32" for a in inputs if "--dport" in a)
    assert [a[-3:] for a in inputs[-2:]] == [
        ("REJECT", "--reject-with", "tcp-reset"),
        ("REJECT", "--reject-with", "icmp-port-unreachable"),
    ]
    assert "-d" not in inputs[-1] and "-p" not in inputs[-1]  # the whole host, every protocol
    forwarded = [r.args for r in WANTED if r.chain == "DOCKER-USER"]
    assert forwarded[0][-2:] == ("-j", "RETURN")
    assert all(a[a.index("-d") + 1] == "169.254.0.0/16" for a in forwarded[1:])
    assert all("REJECT" in a for a in forwarded[1:])
    # nothing else forwarded is refused: the internet stays open
    assert len(forwarded) == 3


def test_the_listing_reads_back_equal_to_the_wanted_rules():
    assert [r for r in CURRENT if tagged_bridge(r)] == WANTED
    assert OTHERS == [
        Rule("INPUT", ("-i", "eth0", "-p", "tcp", "-m", "tcp", "--dport", "22", "-j", "ACCEPT")),
        Rule("DOCKER-USER", ("-j", "RETURN")),
    ]


def test_rules_in_place_are_left_alone():
    assert plan(CURRENT, WANTED, "br-abc", {"br-abc", "eth0"}).delete == []
    assert plan(CURRENT, WANTED, "br-abc", {"br-abc", "eth0"}).insert == []


def test_a_first_start_inserts_the_rules_at_the_top_of_their_chains():
    change = plan(OTHERS, WANTED, "br-abc", {"br-abc"})
    assert change.delete == []
    assert change.insert == [(1, WANTED[0]), (2, WANTED[1]), (3, WANTED[2]), (4, WANTED[3])] + [
        (5, WANTED[4]),
        (1, WANTED[5]),
        (2, WANTED[6]),
        (3, WANTED[7]),
    ]


def test_changed_or_displaced_rules_are_replaced():
    # another port: all of the network's rules go, the new ones come
    other = wanted_rules("br-abc", "dlhub", "172.18.0.1", [8081])
    change = plan(CURRENT, other, "br-abc", {"br-abc"})
    assert change.delete == WANTED and [r for _, r in change.insert] == other
    # someone put a rule above ours: ours go back to the top
    above = [Rule("INPUT", ("-j", "ACCEPT"))] + CURRENT
    change = plan(above, WANTED, "br-abc", {"br-abc"})
    assert change.delete == WANTED and [r for _, r in change.insert] == WANTED


def test_rules_of_removed_networks_go_and_other_networks_rules_stay():
    gone = wanted_rules("br-gone", "old", "172.19.0.1", [8081])
    live = wanted_rules("br-live", "other", "172.20.0.1", [8081])
    change = plan(gone + live + CURRENT, WANTED, "br-abc", {"br-abc", "br-live"})
    # the other network's rules above ours are no reason to replace ours
    assert change.delete == gone and change.insert == []
    change = plan(gone + OTHERS, WANTED, "br-abc", {"br-abc"})
    assert change.delete == gone and [r for _, r in change.insert] == WANTED


def test_iptables_arguments():
    rule = WANTED[1]
    assert iptables_args(rule, "-I", 2) == ["-w", "-I", "INPUT", "2", *rule.args]
    assert iptables_args(rule, "-D") == ["-w", "-D", "INPUT", *rule.args]
