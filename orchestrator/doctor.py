"""fedsage doctor: check, before a run, everything the run needs from the accounts.

The most common failure in cross-account federated learning is a silent hang: a training job
that cannot reach the server because a route, a peering connection or a security-group rule is
missing. Doctor looks at the accounts the way the run will use them: the server's side with the
server's own credentials, each client's side through its kickoff role (assumed with its
ExternalId, exactly as `fedsage launch` does). It prints one row per check with a fix for each
failure and exits 1 if anything fails.

The kickoff role cannot read objects. Where the client's stack allows it (AllowDoctorListing),
the role may list keys under the code and data prefixes, which is enough to see that the code
archive and the data channels exist; where it may not, those rows are warnings that name the
command the data owner runs instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from orchestrator.errors import BadInput

if TYPE_CHECKING:  # the CLI imports this module at start; pydantic loads only when doctor runs
    from orchestrator.config import ClientSettings, Federation

Status = Literal["pass", "fail", "warn"]
DOCTOR_RUN = "doctor"  # the session name is fedsage-doctor, so CloudTrail shows who looked


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, for whom, the outcome, and how to fix a failure."""

    subject: str
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class ServerView:
    """What doctor learned about the server's network."""

    vpc_id: str | None = None
    cidr: IPv4Network | None = None
    route_table: dict[str, Any] | None = None
    security_groups: list[dict[str, Any]] | None = None
    ec2: Any = None


@dataclass
class ClientView:
    """What doctor learned about one client's network through its kickoff role."""

    vpc_id: str | None = None
    cidr: IPv4Network | None = None
    subnets: list[dict[str, Any]] | None = None


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)


# ----------------------------------------------------------------------------- network helpers


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


# ----------------------------------------------------------------------------- the checks


class Doctor:
    """Runs every check of one federation and collects the rows."""

    def __init__(
        self, federation: Federation, server_session: Any, client_session_for: Callable[[ClientSettings], Any]
    ):
        """Keep the federation and how to reach each account."""
        self.federation = federation
        self.server_session = server_session
        self.client_session_for = client_session_for
        self.checks: list[Check] = []
        self.server = ServerView()
        self.clients: dict[str, ClientView] = {}

    def add(self, subject: str, name: str, status: Status, detail: str, fix: str = "") -> None:
        """Record one row."""
        self.checks.append(Check(subject, name, status, detail, fix))

    def run(self) -> list[Check]:
        """Every check, server first, then each client, then what spans accounts."""
        self._federation_settings()
        self._server()
        for client in self.federation.clients:
            self._client(client)
        self._overlaps()
        for client in self.federation.clients:
            self._paths(client)
        return self.checks

    # --- settings
    def _federation_settings(self) -> None:
        name = self.federation.federation.name  # lowercase, by config.PREFIX_PATTERN
        self.add("federation", "job name prefix", "pass", f"jobs are named {name}-<run id>-<client>")
        if self.federation.server.port == 0:
            self.add(
                "server",
                "Flower port",
                "fail",
                "[server] port = 0 (any free port)",
                "set [server] port to the port the security groups open, e.g. 8080",
            )

    # --- server account
    def _server(self) -> None:
        server = self.federation.server
        try:
            account = self.server_session.client("sts").get_caller_identity()["Account"]
        except Exception as exc:  # no credentials, expired SSO session, unreachable endpoint
            self.add(
                "server",
                "credentials",
                "fail",
                f"cannot call AWS ({_error_code(exc)})",
                "set [server] profile (or AWS_PROFILE) to the server account and log in",
            )
            return
        if server.account_id and account != server.account_id:
            self.add(
                "server",
                "credentials",
                "fail",
                f"the credentials are in account {account}",
                f"use a profile of the server account {server.account_id} ([server] profile)",
            )
            return
        self.add("server", "credentials", "pass", f"account {account}")
        ec2 = self.server.ec2 = self.server_session.client("ec2")
        vpcs = self._server_resource("VPC", "vpc_id", "VpcId", ec2.describe_vpcs, "Vpcs", "VpcIds")
        if not vpcs:
            return
        self.server.vpc_id, self.server.cidr = server.vpc_id, IPv4Network(vpcs[0]["CidrBlock"])
        if server.vpc_cidr and server.vpc_cidr != self.server.cidr:
            self.add(
                "server",
                "VPC",
                "fail",
                f"{server.vpc_id} is {self.server.cidr}, config says {server.vpc_cidr}",
                f'set [server] vpc_cidr = "{self.server.cidr}"',
            )
        else:
            self.add("server", "VPC", "pass", f"{server.vpc_id} ({self.server.cidr})")
        self._server_host(ec2)

    def _server_host(self, ec2: Any) -> None:
        server = self.federation.server
        address = server.advertised_address
        subnets = self._describe(
            ec2.describe_subnets, "Subnets", Filters=[{"Name": "vpc-id", "Values": [self.server.vpc_id]}]
        )
        try:
            ip = IPv4Address(address or "")
        except ValueError:
            self.add(
                "server",
                "advertised address",
                "fail",
                f"{address!r} is not an IPv4 address",
                "set [server] advertised_address to the server host's private IP",
            )
            return
        home = next((s for s in subnets if s["VpcId"] == self.server.vpc_id and ip in ip_network(s["CidrBlock"])), None)
        if home is None:
            self.add(
                "server",
                "advertised address",
                "fail",
                f"{ip} is in no subnet of {self.server.vpc_id}",
                "set [server] advertised_address to the host's private IP in the server VPC",
            )
            return
        self.add("server", "advertised address", "pass", f"{ip} in {home['SubnetId']} ({home['CidrBlock']})")
        self.server.route_table = route_tables_of(ec2, self.server.vpc_id, [home["SubnetId"]]).get(home["SubnetId"])
        groups = self._server_resource(
            "security group",
            "security_group",
            "HostSecurityGroupId",
            ec2.describe_security_groups,
            "SecurityGroups",
            "GroupIds",
        )
        if not groups:
            return
        if groups[0]["VpcId"] != self.server.vpc_id:
            self.add(
                "server",
                "security group",
                "fail",
                f"{server.security_group} is not in {self.server.vpc_id}",
                "set [server] security_group to the output HostSecurityGroupId of the server stack",
            )
            return
        self.server.security_groups = groups
        self.add("server", "security group", "pass", f"{server.security_group} in {self.server.vpc_id}")

    def _server_resource(
        self, name: str, key: str, output: str, describe: Callable[..., Any], found: str, ids: str
    ) -> list[dict[str, Any]]:
        """The server resource whose id [server] `key` names, or [] after reporting why it is missing."""
        value = getattr(self.federation.server, key)
        fix = f"set [server] {key} to the output {output} of the server stack (fedsage infra deploy prints it)"
        if not value:
            self.add("server", name, "fail", f"[server] {key} is not set", fix)
            return []
        items = self._describe(describe, found, **{ids: [value]})
        if not items:
            self.add("server", name, "fail", f"{value} not found in the server account", fix)
        return items

    # --- client account
    def _client(self, client: ClientSettings) -> None:
        view = self.clients[client.name] = ClientView()
        missing = client.missing_for_launch()
        if missing:
            self.add(
                client.name,
                "config",
                "fail",
                f"missing {', '.join(missing)}",
                "set them in this [[clients]] table (see examples/federation.toml)",
            )
        self._image(client)
        if not (client.kickoff_role_arn and client.external_id and client.region):
            return
        from orchestrator.aws import sessions

        session = self.client_session_for(client)
        try:
            arn = sessions.check_assumable(session, client)
        except BadInput as exc:
            self.add(
                client.name,
                "kickoff role",
                "fail",
                str(exc).split(": ", 1)[-1].split(";")[0],
                f"check that external_id matches the ExternalId of the client stack in {client.account_id}, "
                "that the role trusts the server account, and that the server's policy allows sts:AssumeRole "
                "on it",
            )
            return
        self.add(client.name, "kickoff role", "pass", f"assumed as {arn}")
        ec2 = session.client("ec2")
        self._client_network(client, ec2, view)
        self._objects(client, session)

    def _image(self, client: ClientSettings) -> None:
        if not client.region:
            return
        from orchestrator.images import training_image

        try:
            image = training_image(self.federation.container, client.region)
        except BadInput as exc:
            self.add(
                client.name,
                "training image",
                "fail",
                str(exc).split(" (")[0],
                "set [container] framework_version to one available in every client region, or image_uri",
            )
            return
        self.add(client.name, "training image", "pass", image)

    def _client_resources(
        self, client: ClientSettings, key: str, output: str, describe: Callable[..., Any], ids: str
    ) -> list[dict[str, Any]] | None:
        """The client's subnets or security groups as configured, or None after reporting the error."""
        wanted = getattr(client, key)
        name = key.replace("_", " ")
        try:
            response = describe(**{ids: wanted})
        except Exception as exc:
            self.add(
                client.name,
                name,
                "fail",
                f"{', '.join(wanted)}: {_error_code(exc)}",
                f"set {key} to the output {output} of the client stack",
            )
            return None
        return next(value for field, value in response.items() if field != "ResponseMetadata")

    def _client_network(self, client: ClientSettings, ec2: Any, view: ClientView) -> None:
        if not client.subnets:
            return
        subnets = self._client_resources(client, "subnets", "SubnetIds", ec2.describe_subnets, "SubnetIds")
        if subnets is None:
            return
        vpcs = sorted({s["VpcId"] for s in subnets})
        if len(vpcs) != 1:
            self.add(
                client.name,
                "subnets",
                "fail",
                f"the subnets are in {len(vpcs)} VPCs ({', '.join(vpcs)})",
                "use subnets of the client stack's VPC only",
            )
            return
        view.vpc_id, view.subnets = vpcs[0], subnets
        view.cidr = IPv4Network(ec2.describe_vpcs(VpcIds=vpcs)["Vpcs"][0]["CidrBlock"])
        self.add(client.name, "subnets", "pass", f"{len(subnets)} subnets in {view.vpc_id} ({view.cidr})")
        if client.vpc_cidr and client.vpc_cidr != view.cidr:
            self.add(
                client.name,
                "VPC CIDR",
                "fail",
                f"{view.vpc_id} is {view.cidr}, config says {client.vpc_cidr}",
                f'set vpc_cidr = "{view.cidr}" in this [[clients]] table',
            )
        groups = self._client_resources(
            client, "security_groups", "JobSecurityGroupId", ec2.describe_security_groups, "GroupIds"
        )
        if groups is None:
            return
        strays = [g["GroupId"] for g in groups if g["VpcId"] != view.vpc_id]
        if strays:
            self.add(
                client.name,
                "security groups",
                "fail",
                f"{', '.join(strays)} not in {view.vpc_id}",
                "use the job security group of the client stack's VPC",
            )
            return
        self.add(client.name, "security groups", "pass", f"{', '.join(client.security_groups)} in {view.vpc_id}")
        self._client_paths(client, ec2, view, groups)

    def _client_paths(self, client: ClientSettings, ec2: Any, view: ClientView, groups: list[dict[str, Any]]) -> None:
        """Routes and egress from the job subnets: to the server, and to S3."""
        assert view.vpc_id and view.subnets is not None
        server = self.federation.server
        tables = route_tables_of(ec2, view.vpc_id, [s["SubnetId"] for s in view.subnets])
        port = server.port
        target = IPv4Network(f"{server.advertised_address}/32") if server.advertised_address else None
        if target is not None:
            self._routes_to_server(client, tables, target)
            if groups_allow(groups, "IpPermissionsEgress", port, target):
                self.add(client.name, "jobs' egress to server", "pass", f"tcp {port} to {target} allowed")
            else:
                cidr = self.server.cidr or server.vpc_cidr or target
                self.add(
                    client.name,
                    "jobs' egress to server",
                    "fail",
                    f"{', '.join(client.security_groups)} allow no tcp {port} to {target}",
                    f"add egress tcp {port} to {cidr} on {client.security_groups[0]} (client stack: "
                    "ServerVpcCidr and FlowerPort)",
                )
        self._s3_path(client, tables, groups)

    def _routes_to_server(self, client: ClientSettings, tables: dict[str, dict[str, Any]], target: IPv4Network) -> None:
        peering = self._peering(client)
        for subnet, table in sorted(tables.items()):
            route = best_route(table, target)
            via = route.get("VpcPeeringConnectionId") if route else None
            if (
                route
                and via
                and (peering is None or via == peering["VpcPeeringConnectionId"])
                and route.get("State", "active") == "active"
            ):
                self.add(client.name, "route to server", "pass", f"{subnet}: {route['DestinationCidrBlock']} via {via}")
                continue
            pcx = peering["VpcPeeringConnectionId"] if peering else "<the peering connection>"
            cidr = self.server.cidr or self.federation.server.vpc_cidr or target
            found = f"goes to {via or route.get('GatewayId') or route.get('NatGatewayId')}" if route else "no route"
            self.add(
                client.name,
                "route to server",
                "fail",
                f"{subnet} ({table['RouteTableId']}): {target} {found}",
                f"add a route {cidr} -> {pcx} to {table['RouteTableId']} (deploy the client stack with "
                f"PeeringConnectionId={pcx})",
            )

    def _s3_path(self, client: ClientSettings, tables: dict[str, dict[str, Any]], groups: list[dict[str, Any]]) -> None:
        """The jobs download code and data from S3: a gateway endpoint (or NAT) route and HTTPS egress to it."""
        lists = set()
        for table in tables.values():
            routes = table.get("Routes", [])
            endpoint = [r["DestinationPrefixListId"] for r in routes if str(r.get("GatewayId", "")).startswith("vpce-")]
            default = [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
            if not endpoint and not default:
                self.add(
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
            self.add(client.name, "S3 from the jobs", "pass", "gateway endpoint route and HTTPS egress")
        else:
            self.add(
                client.name,
                "S3 from the jobs",
                "fail",
                f"no HTTPS egress to {', '.join(sorted(lists))}",
                f"add egress tcp 443 to prefix list {', '.join(sorted(lists))} (client stack: S3PrefixListId)",
            )

    def _objects(self, client: ClientSettings, session: Any) -> None:
        """The code archive and the data channels, as far as the kickoff role may list keys."""
        s3 = session.client("s3")
        wanted = [("code archive", client.code_uri, True), ("train channel", client.train_uri, False)]
        if client.validation_uri:
            wanted.append(("validation channel", client.validation_uri, False))
        for name, uri, exact in wanted:
            if not uri or not uri.startswith("s3://"):
                continue
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            try:
                listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=2)
            except Exception as exc:
                code = _error_code(exc)
                if code in ("AccessDenied", "AllAccessDisabled"):
                    self.add(
                        client.name,
                        name,
                        "warn",
                        f"the kickoff role may not list {uri}",
                        f"the data owner checks it: aws s3 ls {uri} --profile <data owner>",
                    )
                else:
                    self.add(
                        client.name,
                        name,
                        "fail",
                        f"{uri}: {code}",
                        "create the bucket with the client stack, or fix the URI",
                    )
                continue
            keys = [o["Key"] for o in listed.get("Contents", [])]
            present = key in keys if exact else bool(keys)
            if present:
                self.add(client.name, name, "pass", uri)
            else:
                how = "fedsage package" if exact else "fedsage data upload"
                self.add(client.name, name, "fail", f"nothing at {uri}", f"the data owner uploads it ({how})")

    # --- what spans accounts
    def _overlaps(self) -> None:
        ranges = [("server", self.server.cidr or self.federation.server.vpc_cidr)]
        ranges += [(c.name, self.clients[c.name].cidr or c.vpc_cidr) for c in self.federation.clients]
        known = [(name, cidr) for name, cidr in ranges if cidr is not None]
        clashes = [(a, ca, b, cb) for i, (a, ca) in enumerate(known) for b, cb in known[i + 1 :] if ca.overlaps(cb)]
        for a, ca, b, cb in clashes:
            taken = [cidr for _, cidr in known]
            self.add(
                b,
                "CIDR overlap",
                "fail",
                f"{b}'s VPC {cb} overlaps {a}'s {ca}",
                f"re-create {b}'s VPC with a range no other VPC uses, e.g. {free_range(taken)} (VpcCidr "
                "parameter of its stack, and vpc_cidr in federation.toml); peering cannot route overlapping "
                "ranges",
            )
        if not clashes and len(known) > 1:
            self.add("federation", "CIDR overlap", "pass", ", ".join(f"{n} {c}" for n, c in known))

    def _peering(self, client: ClientSettings) -> dict[str, Any] | None:
        """The peering connection between the server VPC and the client VPC, seen from the server."""
        view = self.clients.get(client.name)
        if not (self.server.ec2 and self.server.vpc_id and view and view.vpc_id):
            return None
        connections = self.server.ec2.describe_vpc_peering_connections(
            Filters=[{"Name": "requester-vpc-info.vpc-id", "Values": [self.server.vpc_id]}]
        )["VpcPeeringConnections"]
        pairs = [
            c
            for c in connections
            if {c["RequesterVpcInfo"]["VpcId"], c["AccepterVpcInfo"]["VpcId"]} == {self.server.vpc_id, view.vpc_id}
        ]
        active = [c for c in pairs if c["Status"]["Code"] == "active"]
        return (active or pairs or [None])[0]

    def _paths(self, client: ClientSettings) -> None:
        """Peering, server-side route and ingress for one client (server credentials)."""
        view = self.clients[client.name]
        if not (self.server.ec2 and self.server.vpc_id and view.vpc_id):
            return
        peering = self._peering(client)
        stack = f"{self.federation.federation.name}-fedsage-peering-{client.name}"
        if peering is None:
            self.add(
                client.name,
                "peering",
                "fail",
                f"no peering between {self.server.vpc_id} and {view.vpc_id}",
                f"deploy the peering stack {stack} in the server account (fedsage infra deploy)",
            )
        elif peering["Status"]["Code"] != "active":
            pcx = peering["VpcPeeringConnectionId"]
            self.add(
                client.name,
                "peering",
                "fail",
                f"{pcx} is {peering['Status']['Code']}",
                f"accept it in account {client.account_id}: aws ec2 accept-vpc-peering-connection "
                f"--vpc-peering-connection-id {pcx} (or redeploy {stack})",
            )
        else:
            self.add(client.name, "peering", "pass", f"{peering['VpcPeeringConnectionId']} active")
        sources = [ip_network(s["CidrBlock"]) for s in view.subnets or []]
        self._server_route(client, peering, sources)
        self._server_ingress(client, sources)

    def _server_route(self, client: ClientSettings, peering: dict[str, Any] | None, sources: list[IPv4Network]) -> None:
        table = self.server.route_table
        if table is None:
            return
        pcx = peering["VpcPeeringConnectionId"] if peering else "<the peering connection>"
        for source in sources:
            route = best_route(table, source)
            if route and route.get("VpcPeeringConnectionId") == pcx and route.get("State", "active") == "active":
                self.add(client.name, "route from server", "pass", f"{source} via {pcx}")
            else:
                self.add(
                    client.name,
                    "route from server",
                    "fail",
                    f"{table['RouteTableId']} has no active route to {source} via {pcx}",
                    f"add a route {client.vpc_cidr or source} -> {pcx} to {table['RouteTableId']} (peering stack)",
                )

    def _server_ingress(self, client: ClientSettings, sources: list[IPv4Network]) -> None:
        groups = self.server.security_groups
        if groups is None:
            return
        port = self.federation.server.port
        for source in sources:
            if groups_allow(groups, "IpPermissions", port, source):
                self.add(client.name, "server ingress", "pass", f"tcp {port} from {source}")
            else:
                self.add(
                    client.name,
                    "server ingress",
                    "fail",
                    f"{groups[0]['GroupId']} admits no tcp {port} from {source}",
                    f"add ingress tcp {port} from {client.vpc_cidr or source} to {groups[0]['GroupId']} "
                    "(peering stack)",
                )

    def _describe(self, call: Callable[..., dict[str, Any]], key: str, **kwargs: Any) -> list[dict[str, Any]]:
        """A Describe* call that returns [] for ids that do not exist."""
        try:
            return call(**kwargs)[key]
        except Exception as exc:
            if "NotFound" in _error_code(exc) or "Malformed" in _error_code(exc):
                return []
            raise


def diagnose(
    federation: Federation, server_session: Any, client_session_for: Callable[[ClientSettings], Any] | None = None
) -> list[Check]:
    """Run every check of a federation; client accounts are reached through their kickoff roles."""
    from orchestrator.aws import sessions

    def through_kickoff_role(client: ClientSettings) -> Any:
        return sessions.client_session(server_session, client, DOCTOR_RUN)

    return Doctor(federation, server_session, client_session_for or through_kickoff_role).run()


def report(checks: list[Check], console: Any) -> None:
    """The pass/fail table, failures with their fix."""
    from rich.table import Table

    table = Table(show_lines=False, expand=False)
    for column in ("check", "for", "result", "detail / fix"):
        table.add_column(column, overflow="fold")
    colours = {"pass": "green", "fail": "red", "warn": "yellow"}
    for check in checks:
        text = check.detail + (f"\nfix: {check.fix}" if check.fix else "")
        table.add_row(check.name, check.subject, f"[{colours[check.status]}]{check.status}[/]", text)
    console.print(table)
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    summary = f"{len(checks) - failed - warned} passed, {failed} failed, {warned} to check by the data owner"
    console.print(f"[bold]{summary}[/]", highlight=False)


DOCTOR_EPILOG = (
    "Examples:\n\n  fedsage doctor -c federation.toml\n\n  AWS_PROFILE=fl-server fedsage doctor -c federation.toml"
)


def doctor_command(
    config_path: Annotated[Path, typer.Option("--config", "-c", help="federation.toml")],
) -> None:
    """Check roles, network paths, image and data of every account before a run; exit 1 if anything fails."""
    from rich.console import Console

    from orchestrator import config
    from orchestrator.aws import sessions

    federation = config.load(config_path)
    console = Console(soft_wrap=True)
    with console.status("checking the server and client accounts"):
        checks = diagnose(federation, sessions.server_session(federation.server))
    report(checks, console)
    if any(check.status == "fail" for check in checks):
        raise typer.Exit(code=1)
