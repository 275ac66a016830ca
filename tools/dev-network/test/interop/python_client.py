"""Calls the dev Network Manager and Spore Manager from Python grpcio: a
second, independent gRPC implementation, with stubs generated at test time
from the same protos. Prints one JSON object with what it saw."""
import json
import sys

import grpc

sys.path.insert(0, sys.argv[1])  # generated stubs
from mycelium.core.v1 import common_pb2, network_manager_pb2, network_manager_pb2_grpc  # noqa: E402
from mycelium.core.v1 import spore_pb2, spore_pb2_grpc  # noqa: E402

args = json.loads(sys.argv[2])
ca = open(args["ca"], "rb").read()
key = open(args["key"], "rb").read()
cert = open(args["cert"], "rb").read()
options = [("grpc.ssl_target_name_override", "localhost")]
creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
out = {}

with grpc.secure_channel(args["networkManager"], creds, options) as channel:
    nm = network_manager_pb2_grpc.NetworkManagerStub(channel)
    reg = nm.RegisterNode(
        network_manager_pb2.RegisterNodeRequest(
            identity=common_pb2.NodeIdentity(network_id=args["networkId"], node_id=args["nodeId"]),
            capabilities=common_pb2.Capabilities(cpu_cores=2, os="linux", arch="x64", agent_version="python-interop"),
            contract_versions=common_pb2.ContractVersionRange(min=1, max=1),
            boot_id="py",
            from_phase=common_pb2.PHASE_DISCOVERY,
        ),
        timeout=5,
    )
    out["contractVersion"] = reg.contract_version
    out["heartbeatIntervalMs"] = reg.heartbeat_interval.seconds * 1000 + reg.heartbeat_interval.nanos // 1000000
    out["leaseId"] = reg.lease.lease_id
    commit = nm.CommitHandoff(
        network_manager_pb2.CommitHandoffRequest(handoff_id=reg.handoff_id, lease_id=reg.lease.lease_id), timeout=5
    )
    out["handoff"] = network_manager_pb2.HandoffOutcome.Name(commit.outcome)

    def reports():
        for seq in (1, 2, 3):
            yield network_manager_pb2.ReportHealthRequest(
                lease_id=reg.lease.lease_id, sequence=seq, phase=common_pb2.PHASE_MANAGED, state=common_pb2.HEALTH_STATE_HEALTHY
            )

    acks = list(nm.ReportHealth(reports(), timeout=5))
    out["acks"] = [a.sequence for a in acks]
    out["leaseRevoked"] = any(a.lease_revoked for a in acks)
    try:
        nm.RegisterNode(
            network_manager_pb2.RegisterNodeRequest(
                identity=common_pb2.NodeIdentity(network_id=args["networkId"], node_id=args["nodeId"]),
                capabilities=common_pb2.Capabilities(cpu_cores=1),
                contract_versions=common_pb2.ContractVersionRange(min=9, max=9),
            ),
            timeout=5,
        )
        out["unsupportedVersion"] = "accepted?!"
    except grpc.RpcError as err:
        out["unsupportedVersion"] = err.code().name

with grpc.secure_channel(args["sporeManager"], creds, options) as channel:
    sm = spore_pb2_grpc.SporeServiceStub(channel)
    listed = sm.ListSpores(spore_pb2.ListSporesRequest(), timeout=5)
    names = []
    for signed in listed.spores:
        spore = spore_pb2.Spore()
        spore.ParseFromString(signed.spore)
        names.append(spore.name)
    out["spores"] = sorted(names)

enroll_creds = grpc.ssl_channel_credentials(root_certificates=ca)
with grpc.secure_channel(args["enrollment"], enroll_creds, options) as channel:
    nm = network_manager_pb2_grpc.NetworkManagerStub(channel)
    try:
        nm.Enroll(network_manager_pb2.EnrollRequest(join_token="myc1.bad"), timeout=5)
        out["badToken"] = "accepted?!"
    except grpc.RpcError as err:
        out["badToken"] = err.code().name
        out["badTokenDetails"] = err.details()

print(json.dumps(out))
