"""A Python gRPC peer for mcp.connectionlog.v1.ConnectionLogService.

Usage: MCP_API_KEY=<key> client.py ADDRESS CONNECTION_ID AGENT_ID
The generated stubs (package `mcp.connectionlog.v1`) must be importable, e.g.
through PYTHONPATH. The API key (sent as `authorization: Bearer <key>`) comes
from the environment, not the command line, so it never shows in `ps`. Checks what a Python client sees, exits non-zero on the
first mismatch (message on stderr), and prints one JSON line on stdout for
the caller to compare with the database. int64 values are printed as strings
so that a JavaScript reader keeps every digit.
"""

import json
import os
import sys
import time
import uuid

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

from mcp.connectionlog.v1 import connection_log_pb2 as pb
from mcp.connectionlog.v1 import connection_log_pb2_grpc as pb_grpc

BIG_INT64 = 9007199254740993  # 2**53 + 1: not representable as a float64
REQUEST_DATA = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "search", "arguments": {"q": "caf\u00e9 \u2713 \U0001F600", "limit": 10, "ratio": 0.5}}}
DEADLINE_S = 15


def fail(message):
    sys.stderr.write("python client: " + message + "\n")
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def status_types():
    """google.rpc.Status and google.rpc.BadRequest classes.

    From googleapis-common-protos when installed; otherwise built from a
    descriptor written here (same names, numbers and types as
    google/rpc/status.proto and google/rpc/error_details.proto), since Debian
    packages no python3 googleapis-common-protos.
    """
    try:
        from google.rpc import error_details_pb2, status_pb2  # type: ignore
        return status_pb2.Status, error_details_pb2.BadRequest, "googleapis-common-protos"
    except ImportError:
        pass
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="google/rpc/status_and_bad_request_subset.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    status = fdp.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    status.field.add(name="details", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                     type_name=".google.protobuf.Any")
    bad = fdp.message_type.add(name="BadRequest")
    violation = bad.nested_type.add(name="FieldViolation")
    violation.field.add(name="field", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    violation.field.add(name="description", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    bad.field.add(name="field_violations", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                  type_name=".google.rpc.BadRequest.FieldViolation")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(fdp.SerializeToString())

    def cls(name):
        desc = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(desc)
        return message_factory.MessageFactory(pool).GetPrototype(desc)

    return cls("google.rpc.Status"), cls("google.rpc.BadRequest"), "descriptor built in client.py"


def ack_json(ack):
    return {"id": ack.id, "timestamp_ms": ack.timestamp.ToMilliseconds(), "already_stored": ack.already_stored}


AUTH = (("authorization", "Bearer " + os.environ["MCP_API_KEY"]),) if os.environ.get("MCP_API_KEY") else ()


def record(stub, events):
    res = stub.RecordEvents(pb.RecordEventsRequest(events=events), timeout=DEADLINE_S, metadata=AUTH)
    return {"stored_count": res.stored_count, "duplicate_count": res.duplicate_count,
            "acks": [ack_json(a) for a in res.acks]}


def main():
    if len(sys.argv) != 4:
        fail("usage: client.py ADDRESS CONNECTION_ID AGENT_ID")
    address, connection_id, agent_id = sys.argv[1:4]

    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=DEADLINE_S)
        stub = pb_grpc.ConnectionLogServiceStub(channel)

        # --- RecordEvents: one keyed event (id + timestamp), two the server keys.
        keyed_id = str(uuid.uuid4())
        keyed_ts_ms = int(time.time() * 1000) - 60_000
        keyed = pb.ConnectionEvent(
            id=keyed_id,
            connection_id=connection_id,
            event_type=pb.EVENT_TYPE_USAGE_RECORDED,
            event_details="python peer: tools/call search",
            request_data=json.dumps(REQUEST_DATA),
            response_data=json.dumps({"content": [{"type": "text", "text": "3 results"}], "isError": False}),
            latency_ms=0,  # present and zero: must be stored as 0, not NULL
            bytes_transferred=BIG_INT64,
            user_agent="python-grpc/" + grpc.__version__,
            ip_address="2001:db8::7",
            session_id="py-session-1",
        )
        keyed.timestamp.FromMilliseconds(keyed_ts_ms)
        batch = [
            keyed,
            pb.ConnectionEvent(connection_id=connection_id, event_type=pb.EVENT_TYPE_CONNECTED,
                               new_status="connected"),
            pb.ConnectionEvent(connection_id=connection_id, event_type=pb.EVENT_TYPE_ERROR,
                               error_data=json.dumps({"code": -32603, "message": "boom"})),
        ]
        first = record(stub, batch)
        check(first["stored_count"] == 3 and first["duplicate_count"] == 0, "first call: %r" % (first,))
        check(first["acks"][0]["id"] == keyed_id and first["acks"][0]["timestamp_ms"] == keyed_ts_ms,
              "first ack does not echo the client key: %r" % (first["acks"][0],))

        # --- The same batch again (a client retry). Only the keyed event is
        # idempotent; the server assigns fresh keys to the other two.
        retry = record(stub, batch)
        check(retry["duplicate_count"] == 1 and retry["stored_count"] == 2, "retry: %r" % (retry,))
        check(retry["acks"][0] == {"id": keyed_id, "timestamp_ms": keyed_ts_ms, "already_stored": True},
              "retry ack of the keyed event: %r" % (retry["acks"][0],))

        # --- ListEvents on this connection, two per page, to the end.
        pages = []
        listed = []
        token = ""
        while True:
            res = stub.ListEvents(pb.ListEventsRequest(
                filter=pb.EventFilter(connection_ids=[connection_id]), page_size=2, page_token=token),
                timeout=DEADLINE_S, metadata=AUTH)
            pages.append([e.id for e in res.events])
            for e in res.events:
                listed.append({
                    "id": e.id,
                    "agent_id": e.agent_id,
                    "connection_id": e.connection_id,
                    "event_type": pb.EventType.Name(e.event_type),
                    "timestamp_ms": e.timestamp.ToMilliseconds(),
                    "bytes_transferred": str(e.bytes_transferred) if e.HasField("bytes_transferred") else None,
                    "latency_ms": e.latency_ms if e.HasField("latency_ms") else None,
                    "request_data": e.request_data if e.HasField("request_data") else None,
                })
            token = res.next_page_token
            check(len(pages) <= 100, "pagination does not end")
            if not token:
                break
        back = [e for e in listed if e["id"] == keyed_id]
        check(len(back) == 1, "keyed event listed %d times" % len(back))
        check(back[0]["bytes_transferred"] == str(BIG_INT64), "int64 changed: %r" % (back[0]["bytes_transferred"],))
        check(json.loads(back[0]["request_data"]) == REQUEST_DATA, "request_data changed: %r" % (back[0]["request_data"],))
        check(back[0]["latency_ms"] == 0, "latency_ms 0 came back as %r" % (back[0]["latency_ms"],))
        check(all(e["agent_id"] == agent_id for e in listed), "events of another agent listed")

        # --- A bad request: INVALID_ARGUMENT with a google.rpc.Status trailer.
        bad = {"code": None}
        try:
            stub.RecordEvents(pb.RecordEventsRequest(events=[
                pb.ConnectionEvent(connection_id="nope", event_type=pb.EVENT_TYPE_CONNECTED)]), timeout=DEADLINE_S,
                metadata=AUTH)
        except grpc.RpcError as err:
            bad["code"] = err.code().name
            bad["details"] = err.details()
            trailer = [v for k, v in (err.trailing_metadata() or ()) if k == "grpc-status-details-bin"]
            bad["trailer_present"] = len(trailer) == 1
            if trailer:
                Status, BadRequest, decoder = status_types()
                status = Status.FromString(trailer[0])
                bad["decoder"] = decoder
                bad["status_code"] = status.code
                bad["status_message"] = status.message
                bad["detail_types"] = [d.type_url for d in status.details]
                violations = []
                for d in status.details:
                    if d.type_url == "type.googleapis.com/google.rpc.BadRequest":
                        br = BadRequest.FromString(d.value)
                        violations += [{"field": v.field, "description": v.description} for v in br.field_violations]
                bad["violations"] = violations
        check(bad["code"] == grpc.StatusCode.INVALID_ARGUMENT.name, "bad request answered %r" % (bad,))
        check(bad.get("trailer_present") is True, "no grpc-status-details-bin trailer")
        check(bad["status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0], "Status.code %r" % (bad["status_code"],))
        check(any(v["field"] == "events[0].connection_id" for v in bad["violations"]),
              "no violation for events[0].connection_id: %r" % (bad["violations"],))

    print(json.dumps({
        "python": sys.version.split()[0],
        "grpc": grpc.__version__,
        "keyed": {"id": keyed_id, "timestamp_ms": keyed_ts_ms, "bytes_transferred": str(BIG_INT64),
                  "request_data": REQUEST_DATA},
        "first": first,
        "retry": retry,
        "pages": pages,
        "listed": listed,
        "bad_request": bad,
    }, ensure_ascii=True))


if __name__ == "__main__":
    main()
