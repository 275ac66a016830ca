"""A stock Python grpcio reflection client against node-core's status server.

argv: <dir with generated reflection stubs> <host:port>
Prints one JSON line: the services listed, the files returned for
mycelium.core.v1.NodeStatus (in the order sent), the StatusReport field names
and the GetStatus answer decoded through a strict C++ descriptor pool built
only from what reflection returned.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory  # noqa: E402
from pyreflection import reflection_pb2, reflection_pb2_grpc  # noqa: E402

channel = grpc.insecure_channel(sys.argv[2])
stub = reflection_pb2_grpc.ServerReflectionStub(channel)


def ask(**request):
    return next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)])))


services = [s.name for s in ask(list_services="*").list_services_response.service]
answer = ask(file_containing_symbol="mycelium.core.v1.NodeStatus").file_descriptor_response
files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in answer.file_descriptor_proto]
by_name = {f.name: f for f in files}

# The C++ pool refuses a file whose imports it has not seen: add dependencies first.
pool = descriptor_pool.DescriptorPool()
added = set()


def add(name):
    if name in added:
        return
    for dep in by_name[name].dependency:
        add(dep)
    pool.Add(by_name[name])
    added.add(name)


for f in files:
    add(f.name)

method = pool.FindServiceByName("mycelium.core.v1.NodeStatus").FindMethodByName("GetStatus")
factory = message_factory.MessageFactory(pool)
Request = factory.GetPrototype(method.input_type)
Response = factory.GetPrototype(method.output_type)
call = channel.unary_unary(
    "/mycelium.core.v1.NodeStatus/GetStatus",
    request_serializer=Request.SerializeToString,
    response_deserializer=Response.FromString,
)
response = call(Request(), timeout=10)
report = pool.FindMessageTypeByName("mycelium.core.v1.StatusReport")
print(
    json.dumps(
        {
            "services": services,
            "files": [f.name for f in files],
            "fields": [f.name for f in report.fields],
            "status": json_format.MessageToDict(response, preserving_proto_field_name=True),
        }
    )
)
