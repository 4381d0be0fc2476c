"""Doctor's checks of the network paths between the accounts: what a silent hang would come from.

From the job subnets (kickoff role): a route to the server through the peering connection,
egress on the Flower port, and a way to S3. From the server (its own credentials): the peering
connection is active, the route back to each job subnet, ingress on the Flower port from each.
Across the federation: no two VPC ranges overlap (peering cannot route them).
"""

from __future__ import annotations

from ipaddress import IPv4Network, ip_network
from typing import TYPE_CHECKING, Any

from orchestrator.doctor.findings import ClientView, Doctor
from orchestrator.doctor.network import best_route, free_range, groups_allow, route_tables_of
from orchestrator.infra.parameters import overlapping_vpcs
from orchestrator.infra.plan import peering_stack_name

if TYPE_CHECKING:
    from orchestrator.config import ClientSettings


def check_client_paths(
    doctor: Doctor, client: ClientSettings, ec2: Any, view: ClientView, groups: list[dict[str, Any]]
) -> None:
    """Routes and egress from the job subnets (`ec2`: the kickoff role's client): to the server, and to S3."""
    assert view.vpc_id and view.subnets is not None
    server = doctor.federation.server
    tables = route_tables_of(ec2, view.vpc_id, [s["SubnetId"] for s in view.subnets])
    port = server.port
    target = IPv4Network(f"{server.advertised_address}/32") if server.advertised_address else None
    if target is not None:
        _routes_to_server(doctor, client, tables, target)
        if groups_allow(groups, "IpPermissionsEgress", port, target):
            doctor.add(client.name, "jobs' egress to server", "pass", f"tcp {port} to {target} allowed")
        else:
            cidr = doctor.server.cidr or server.vpc_cidr or target
            doctor.add(
                client.name,
                "jobs' egress to server",
                "fail",
                f"{', '.join(client.security_groups)} allow no tcp {port} to {target}",
                f"add egress tcp {port} to {cidr} on {client.security_groups[0]} (client stack: "
                "ServerVpcCidr and FlowerPort)",
            )
    _s3_path(doctor, client, tables, groups)


def _routes_to_server(
    doctor: Doctor, client: ClientSettings, tables: dict[str, dict[str, Any]], target: IPv4Network
) -> None:
    peering = _peering(doctor, client)
    for subnet, table in sorted(tables.items()):
        route = best_route(table, target)
        via = route.get("VpcPeeringConnectionId") if route else None
        if (
            route
            and via
            and (peering is None or via == peering["VpcPeeringConnectionId"])
            and route.get("State", "active") == "active"
        ):
            doctor.add(client.name, "route to server", "pass", f"{subnet}: {route['DestinationCidrBlock']} via {via}")
            continue
        pcx = peering["VpcPeeringConnectionId"] if peering else "<the peering connection>"
        cidr = doctor.server.cidr or doctor.federation.server.vpc_cidr or target
        found = f"goes to {via or route.get('GatewayId') or route.get('NatGatewayId')}" if route else "no route"
        doctor.add(
            client.name,
            "route to server",
            "fail",
            f"{subnet} ({table['RouteTableId']}): {target} {found}",
            f"add a route {cidr} -> {pcx} to {table['RouteTableId']} (deploy the client stack with "
            f"PeeringConnectionId={pcx})",
        )


def _s3_path(
    doctor: Doctor, client: ClientSettings, tables: dict[str, dict[str, Any]], groups: list[dict[str, Any]]
) -> None:
    """The jobs download code and data from S3: a gateway endpoint (or NAT) route and HTTPS egress to it."""
    lists = set()
    for table in tables.values():
        routes = table.get("Routes", [])
        endpoint = [r["DestinationPrefixListId"] for r in routes if str(r.get("GatewayId", "")).startswith("vpce-")]
        default = [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        if not endpoint and not default:
            doctor.add(
                client.name,
                "S3 from the jobs",
                "fail",
                f"{table['RouteTableId']} has no S3 gateway endpoint",
                "add the S3 gateway endpoint to the job subnets' route table (client stack)",
            )
            return
        lists.update(endpoint)
    egress = [p for g in groups for p in g.get("IpPermissionsEgress", [])]
    https = [
        p for p in egress if str(p.get("IpProtocol")) == "-1" or p.get("FromPort", 0) <= 443 <= p.get("ToPort", -1)
    ]
    allowed = {pl["PrefixListId"] for p in https for pl in p.get("PrefixListIds", [])}
    anywhere = any(r["CidrIp"] == "0.0.0.0/0" for p in https for r in p.get("IpRanges", []))
    if anywhere or (lists and lists <= allowed):
        doctor.add(client.name, "S3 from the jobs", "pass", "gateway endpoint route and HTTPS egress")
    else:
        doctor.add(
            client.name,
            "S3 from the jobs",
            "fail",
            f"no HTTPS egress to {', '.join(sorted(lists))}",
            f"add egress tcp 443 to prefix list {', '.join(sorted(lists))} (client stack: S3PrefixListId)",
        )


def check_overlaps(doctor: Doctor) -> None:
    """No two VPCs of the federation overlap: the ranges found in AWS, else the configured ones."""
    federation = doctor.federation
    ranges = [("server", doctor.server.cidr or federation.server.vpc_cidr)]
    ranges += [(c.name, doctor.clients[c.name].cidr or c.vpc_cidr) for c in federation.clients]
    known = [(name, cidr) for name, cidr in ranges if cidr is not None]
    clashes = overlapping_vpcs(known)
    for a, ca, b, cb in clashes:
        taken = [cidr for _, cidr in known]
        doctor.add(
            b,
            "CIDR overlap",
            "fail",
            f"{b}'s VPC {cb} overlaps {a}'s {ca}",
            f"re-create {b}'s VPC with a range no other VPC uses, e.g. {free_range(taken)} (VpcCidr "
            "parameter of its stack, and vpc_cidr in federation.toml); peering cannot route overlapping "
            "ranges",
        )
    if not clashes and len(known) > 1:
        doctor.add("federation", "CIDR overlap", "pass", ", ".join(f"{n} {c}" for n, c in known))


def _peering(doctor: Doctor, client: ClientSettings) -> dict[str, Any] | None:
    """The peering connection between the server VPC and the client VPC, seen from the server."""
    server = doctor.server
    view = doctor.clients.get(client.name)
    if not (server.ec2 and server.vpc_id and view and view.vpc_id):
        return None
    connections = server.ec2.describe_vpc_peering_connections(
        Filters=[{"Name": "requester-vpc-info.vpc-id", "Values": [server.vpc_id]}]
    )["VpcPeeringConnections"]
    pairs = [
        c
        for c in connections
        if {c["RequesterVpcInfo"]["VpcId"], c["AccepterVpcInfo"]["VpcId"]} == {server.vpc_id, view.vpc_id}
    ]
    active = [c for c in pairs if c["Status"]["Code"] == "active"]
    return (active or pairs or [None])[0]


def check_paths(doctor: Doctor, client: ClientSettings) -> None:
    """Peering, server-side route and ingress for one client (server credentials)."""
    view = doctor.clients[client.name]
    if not (doctor.server.ec2 and doctor.server.vpc_id and view.vpc_id):
        return
    peering = _peering(doctor, client)
    stack = peering_stack_name(doctor.federation, client.name)
    if peering is None:
        doctor.add(
            client.name,
            "peering",
            "fail",
            f"no peering between {doctor.server.vpc_id} and {view.vpc_id}",
            f"deploy the peering stack {stack} in the server account (fedsage infra deploy)",
        )
    elif peering["Status"]["Code"] != "active":
        pcx = peering["VpcPeeringConnectionId"]
        doctor.add(
            client.name,
            "peering",
            "fail",
            f"{pcx} is {peering['Status']['Code']}",
            f"accept it in account {client.account_id}: aws ec2 accept-vpc-peering-connection "
            f"--vpc-peering-connection-id {pcx} (or redeploy {stack})",
        )
    else:
        doctor.add(client.name, "peering", "pass", f"{peering['VpcPeeringConnectionId']} active")
    sources = [ip_network(s["CidrBlock"]) for s in view.subnets or []]
    _server_route(doctor, client, peering, sources)
    _server_ingress(doctor, client, sources)


def _server_route(
    doctor: Doctor, client: ClientSettings, peering: dict[str, Any] | None, sources: list[IPv4Network]
) -> None:
    table = doctor.server.route_table
    if table is None:
        return
    pcx = peering["VpcPeeringConnectionId"] if peering else "<the peering connection>"
    for source in sources:
        route = best_route(table, source)
        if route and route.get("VpcPeeringConnectionId") == pcx and route.get("State", "active") == "active":
            doctor.add(client.name, "route from server", "pass", f"{source} via {pcx}")
        else:
            doctor.add(
                client.name,
                "route from server",
                "fail",
                f"{table['RouteTableId']} has no active route to {source} via {pcx}",
                f"add a route {client.vpc_cidr or source} -> {pcx} to {table['RouteTableId']} (peering stack)",
            )


def _server_ingress(doctor: Doctor, client: ClientSettings, sources: list[IPv4Network]) -> None:
    groups = doctor.server.security_groups
    if groups is None:
        return
    port = doctor.federation.server.port
    for source in sources:
        if groups_allow(groups, "IpPermissions", port, source):
            doctor.add(client.name, "server ingress", "pass", f"tcp {port} from {source}")
        else:
            doctor.add(
                client.name,
                "server ingress",
                "fail",
                f"{groups[0]['GroupId']} admits no tcp {port} from {source}",
                f"add ingress tcp {port} from {client.vpc_cidr or source} to {groups[0]['GroupId']} (peering stack)",
            )
