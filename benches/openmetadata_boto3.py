"""The peer of `tributary metadata ingest` in scripts/bench-metadata.sh: a sequential
boto3 loop doing what OpenMetadata's Kinesis connector does per stream (list the
streams, describe each summary, list its shards, sample the first shard with data
from TRIM_HORIZON), with its pagination bug fixed so both read the same streams.

  openmetadata_boto3.py fill ENDPOINT PREFIX COUNT [WIDE]   # COUNT streams of 1-4 shards, half with 5 records;
                                                            # WIDE more of 120 shards, half with 50 records
  openmetadata_boto3.py run ENDPOINT PREFIX          # prints how many topics and sample messages it found
"""
import json
import re
import sys
import time

import boto3


def client(endpoint):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def fill(endpoint, prefix, count, wide=0):
    kinesis = client(endpoint)
    streams = [(f"{prefix}-{index:03d}", index % 4 + 1, 5 if index % 2 == 0 else 0) for index in range(count)]
    streams += [(f"{prefix}-wide-{index:02d}", 120, 50 if index % 2 == 0 else 0) for index in range(wide)]
    for name, shards, _ in streams:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.time() + 300
    for index, (name, _, records) in enumerate(streams):
        while kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            if time.time() > deadline:
                sys.exit(f"{name} not ACTIVE in time")
            time.sleep(0.05)
        if records:
            kinesis.put_records(StreamName=name, Records=[
                {"Data": json.dumps({"stream": index, "n": n}).encode(), "PartitionKey": f"k{n}"} for n in range(records)
            ])


def run(endpoint, prefix):
    kinesis = client(endpoint)
    names, kwargs = [], {}
    while True:
        page = kinesis.list_streams(**kwargs)
        names += page["StreamNames"]
        if not page.get("HasMoreStreams"):
            break
        kwargs = {"NextToken": page["NextToken"]} if page.get("NextToken") else {"ExclusiveStartStreamName": names[-1]}
    topics, messages = 0, 0
    for name in names:
        if not re.match(prefix, name, re.IGNORECASE):
            continue
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        shards, token = [], None
        while True:
            page = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamName=name)
            shards += page["Shards"]
            token = page.get("NextToken")
            if not token:
                break
        for shard in shards:
            iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records = kinesis.get_records(ShardIterator=iterator)["Records"]
            if records:
                messages += len(records)
                break
        topics += 1
        _ = summary["RetentionPeriodHours"]
    print(json.dumps({"topics": topics, "messages": messages}))


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        fill(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    else:
        run(sys.argv[2], sys.argv[3])
