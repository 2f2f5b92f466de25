"""A Kafka client nobody on this project wrote (librdkafka, through confluent-kafka), used by
tests/interop.rs to read what the engine writes and to write what the engine must read.

    kafka_client.py consume BROKER TOPIC COUNT   print COUNT record values, one per line
                                                 (COUNT 0: every record up to the high
                                                 watermark when it starts)
    kafka_client.py produce BROKER TOPIC KEY [SIGNER SEED]
                                                 send standard input as one record; with
                                                 SIGNER and SEED (a base64 Ed25519 seed),
                                                 signed as the README's wire format says,
                                                 with Python's own Ed25519 (cryptography)
"""

import base64
import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def seal(signer, seed, msg):
    """A signed record: {"v":2,"by","key","sig","msg"}, the signature over
    b"offline-sync-v2" NUL signer NUL msg."""
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed))
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    sig = base64.b64encode(key.sign(b"offline-sync-v2\x00" + signer.encode() + b"\x00" + msg)).decode()
    head = json.dumps({"v": 2, "by": signer, "key": public, "sig": sig})
    return head[:-1].encode() + b', "msg": ' + msg + b"}"


def consume(broker, topic, count):
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": "offline-sync-interop",
            "enable.auto.commit": False,
            "api.version.request": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    if count == 0:
        _low, count = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    seen = 0
    idle = 0
    while seen < count and idle < 30:
        msg = consumer.poll(1.0)
        if msg is None:
            idle += 1
            continue
        if msg.error():
            raise SystemExit(f"consume error: {msg.error()}")
        sys.stdout.write(msg.value().decode("utf-8") + "\n")
        seen += 1
    consumer.close()
    if seen < count:
        raise SystemExit(f"read {seen} of {count} records")


def produce(broker, topic, key, signer=None, seed=None):
    producer = Producer({"bootstrap.servers": broker, "compression.type": "zstd"})
    errors = []
    value = sys.stdin.buffer.read()
    if signer is not None:
        value = seal(signer, seed, value)
    producer.produce(topic, key=key.encode() if key else None, value=value,
                     on_delivery=lambda err, _msg: err and errors.append(err))
    producer.flush(30)
    if errors:
        raise SystemExit(f"produce error: {errors[0]}")


if __name__ == "__main__":
    command, broker, topic, arg = sys.argv[1:5]
    if command == "consume":
        consume(broker, topic, int(arg))
    elif command == "produce":
        produce(broker, topic, arg, *sys.argv[5:7])
    else:
        raise SystemExit(f"unknown command {command}")
