"""A Kafka client nobody on this project wrote (librdkafka, through confluent-kafka), used by
tests/interop.rs to read what the engine writes and to write what the engine must read.

    kafka_client.py consume BROKER TOPIC COUNT   print COUNT record values, one per line
    kafka_client.py produce BROKER TOPIC KEY     send standard input as one record
"""

import sys

from confluent_kafka import Consumer, Producer, TopicPartition


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


def produce(broker, topic, key):
    producer = Producer({"bootstrap.servers": broker, "compression.type": "zstd"})
    errors = []
    producer.produce(topic, key=key.encode(), value=sys.stdin.buffer.read(),
                     on_delivery=lambda err, _msg: err and errors.append(err))
    producer.flush(30)
    if errors:
        raise SystemExit(f"produce error: {errors[0]}")


if __name__ == "__main__":
    command, broker, topic, arg = sys.argv[1:5]
    if command == "consume":
        consume(broker, topic, int(arg))
    elif command == "produce":
        produce(broker, topic, arg)
    else:
        raise SystemExit(f"unknown command {command}")
