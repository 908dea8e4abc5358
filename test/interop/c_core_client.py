"""A gRPC client on C-core (Debian's python3-grpcio), independent of every Node library we use.

Calls one of our services the way grpcurl, ghz and generated stubs in other languages do, with raw
protobuf bytes (no generated code), and prints what it saw as JSON for the interop test to check:
  python3 c_core_client.py <host:port> <service full name> <method of that service>
"""

import json
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string_field(number, value):
    data = value.encode()
    return varint(number << 3 | 2) + varint(len(data)) + data


def read_fields(data):
    """Top-level (field number, bytes-or-int) pairs of a protobuf message."""
    i, out = 0, []
    while i < len(data):
        key, shift = 0, 0
        while True:
            b = data[i]; i += 1
            key |= (b & 0x7F) << shift; shift += 7
            if not b & 0x80:
                break
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, shift = 0, 0
            while True:
                b = data[i]; i += 1
                value |= (b & 0x7F) << shift; shift += 7
                if not b & 0x80:
                    break
        elif wire == 2:
            length, shift = 0, 0
            while True:
                b = data[i]; i += 1
                length |= (b & 0x7F) << shift; shift += 7
                if not b & 0x80:
                    break
            value = data[i:i + length]; i += length
        else:
            raise ValueError("unexpected wire type %d" % wire)
        out.append((number, value))
    return out


def list_services(channel, version):
    stream = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
        request_serializer=None, response_deserializer=None)
    responses = list(stream(iter([string_field(7, "")]), timeout=10))
    names = []
    for number, value in read_fields(responses[0]):
        if number == 6:  # list_services_response
            for n2, service in read_fields(value):
                names += [v.decode() for n3, v in read_fields(service) if n3 == 1]
    return names


def main():
    address, service, method = sys.argv[1:4]
    result = {}
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None)
        fields = dict(read_fields(check(b"", timeout=10)))
        result["health"] = fields.get(1, 0)  # 1 = SERVING
        result["reflection_v1"] = list_services(channel, "v1")
        result["reflection_v1alpha"] = list_services(channel, "v1alpha")
        call = channel.unary_unary("/%s/%s" % (service, method), request_serializer=None, response_deserializer=None)
        try:
            # entity_id (field 1) that is not a UUID: the server must name the field.
            call(string_field(1, "not-a-uuid"), timeout=10)
            result["error"] = None
        except grpc.RpcError as err:
            trailers = dict((k, v) for k, v in (err.trailing_metadata() or ()))
            details = trailers.get("grpc-status-details-bin", b"")
            result["error"] = {
                "code": err.code().name,
                "message": err.details(),
                "request_id": trailers.get("x-request-id"),
                "status_details_bytes": len(details),
                "mentions_field": b"entity_id" in details,
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
