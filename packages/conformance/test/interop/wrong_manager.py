"""A deliberately wrong Network Manager in Python grpcio (a second, independent
gRPC implementation), stubs generated at test time from the v1 protos.

Wrong on purpose: RegisterNode answers contract version 7 whatever range the
node speaks (and never refuses a range it cannot speak). Everything else is
what the contract asks, or UNIMPLEMENTED. Prints its port, then serves until
killed. argv: stubs dir, JSON {ca, cert, key}."""
import json
import sys
import uuid
from concurrent import futures

import grpc

sys.path.insert(0, sys.argv[1])  # generated stubs
from google.protobuf import duration_pb2  # noqa: E402
from mycelium.core.v1 import network_manager_pb2, network_manager_pb2_grpc  # noqa: E402

args = json.loads(sys.argv[2])


class WrongNetworkManager(network_manager_pb2_grpc.NetworkManagerServicer):
    def RegisterNode(self, request, context):
        return network_manager_pb2.RegisterNodeResponse(
            lease=network_manager_pb2.Lease(lease_id=str(uuid.uuid4()), ttl=duration_pb2.Duration(seconds=30)),
            lease_remaining=duration_pb2.Duration(seconds=30),
            heartbeat_interval=duration_pb2.Duration(seconds=1),
            contract_version=7,
            handoff_id=str(uuid.uuid4()),
            handoff_timeout=duration_pb2.Duration(seconds=10),
        )


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
network_manager_pb2_grpc.add_NetworkManagerServicer_to_server(WrongNetworkManager(), server)
read = lambda path: open(path, "rb").read()  # noqa: E731
credentials = grpc.ssl_server_credentials(
    [(read(args["key"]), read(args["cert"]))], root_certificates=read(args["ca"]), require_client_auth=True
)
port = server.add_secure_port("127.0.0.1:0", credentials)
server.start()
print(port, flush=True)
server.wait_for_termination()
