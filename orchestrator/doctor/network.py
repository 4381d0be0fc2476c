"""Network helpers of doctor: which route table a subnet uses, which route wins, which rule admits a port.

They read the plain dictionaries boto3's EC2 Describe* calls return, and judge them as AWS does
(longest-prefix routing; a security group admits traffic any one of its rules allows). No maintained
library does this: boto3 only describes the resources, and AWS's own analysers (VPC Reachability
Analyzer, Network Access Analyzer) are paid services that create analyses (permissions the
read-only kickoff role does not have) and follow a cross-account path only with AWS Organizations
set up for them. The rules needed here are few and stable, so they are written out.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network, ip_network
from typing import Any


def route_tables_of(ec2: Any, vpc_id: str, subnet_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The route table each subnet uses: its explicit association, or the VPC's main table."""
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    tables = [t for t in tables if t["VpcId"] == vpc_id]
    main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
    found = {}
    for subnet in subnet_ids:
        explicit = next(
            (t for t in tables if any(a.get("SubnetId") == subnet for a in t.get("Associations", []))), None
        )
        table = explicit or main
        if table is not None:
            found[subnet] = table
    return found


def best_route(table: dict[str, Any], destination: IPv4Network) -> dict[str, Any] | None:
    """The route AWS would pick for a whole destination range: the longest prefix that covers it."""
    covering = [
        route
        for route in table.get("Routes", [])
        if route.get("DestinationCidrBlock") and destination.subnet_of(ip_network(route["DestinationCidrBlock"]))
    ]
    return max(covering, key=lambda r: ip_network(r["DestinationCidrBlock"]).prefixlen, default=None)


def rule_allows(permission: dict[str, Any], port: int, destination: IPv4Network) -> bool:
    """Whether one security-group permission covers TCP `port` for every address in `destination`."""
    protocol = str(permission.get("IpProtocol"))
    if protocol not in ("tcp", "6", "-1"):
        return False
    if protocol != "-1" and not permission.get("FromPort", 0) <= port <= permission.get("ToPort", -1):
        return False
    return any(destination.subnet_of(ip_network(r["CidrIp"])) for r in permission.get("IpRanges", []))


def groups_allow(groups: list[dict[str, Any]], key: str, port: int, destination: IPv4Network) -> bool:
    """Whether any of the groups' ingress (IpPermissions) or egress (IpPermissionsEgress) rules allow it."""
    return any(rule_allows(p, port, destination) for g in groups for p in g.get(key, []))


def free_range(taken: list[IPv4Network]) -> str:
    """A 10.x.0.0/16 range that overlaps none of `taken`, to suggest in a fix."""
    for second in range(10, 256, 10):
        candidate = IPv4Network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    return "a private range no other VPC of the federation uses"
