#!/usr/bin/env python3
"""Prints the messages of a .pgtrace file (see pg_capture.py), one line each, to check a fixture by eye."""
import struct
import sys


def frames(stream, first_untyped):
    at = 0
    if first_untyped:
        while at + 8 <= len(stream):
            n, code = struct.unpack(">ii", stream[at:at + 8])
            yield f"startup-packet code={code} len={n}"
            at += n
            if code not in (80877103, 80877104):
                break
    while at + 5 <= len(stream):
        tag = chr(stream[at])
        n = struct.unpack(">i", stream[at + 1:at + 5])[0]
        body = stream[at + 5:at + 1 + n]
        extra = body[:1].decode() if tag == "Z" else body[:40]
        yield f"{tag} len={n} {extra!r}"
        at += 1 + n


def main(path):
    data = open(path, "rb").read()
    streams = {"C": b"", "S": b""}
    order = []
    at = 0
    while at < len(data):
        tag = chr(data[at])
        n = struct.unpack(">i", data[at + 1:at + 5])[0]
        streams[tag] += data[at + 5:at + 5 + n]
        order.append((tag, n))
        at += 5 + n
    print("chunks:", " ".join(f"{t}{n}" for t, n in order))
    for tag, first in (("C", True), ("S", False)):
        print("client:" if tag == "C" else "server:")
        for line in frames(streams[tag], first):
            print("   ", line)


if __name__ == "__main__":
    main(sys.argv[1])
