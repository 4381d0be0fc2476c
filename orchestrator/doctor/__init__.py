"""fedsage doctor: check, before a run, everything the run needs from the accounts.

The most common failure in cross-account federated learning is a silent hang: a training job
that cannot reach the server because a route, a peering connection or a security-group rule is
missing. Doctor looks at the accounts the way the run will use them: the server's side with the
server's own credentials, each client's side through its kickoff role (assumed with its
ExternalId, exactly as `fedsage launch` does). It reports one row per check with a fix for each
failure; the command (orchestrator/cli/doctor.py) prints them and exits 1 if anything fails.

- checks.py: `diagnose`, every check in order; findings.py: the rows and what was learned so far;
- server.py: the server account (credentials, VPC, host address, security group);
- clients.py: each client account through its kickoff role (config, image, role, subnets,
  security groups, code and data);
- paths.py: the network paths between them (peering, routes both ways, ingress and egress on
  the Flower port, S3 from the jobs, overlapping VPC ranges); network.py: the helpers they use.
"""
