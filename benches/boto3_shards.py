"""What both Python benchmark peers share: a boto3 Kinesis client for the
local emulator and a plain GetRecords loop over every shard from TRIM_HORIZON,
the way a user would write one."""

import os

import boto3


def kinesis_client():
    return boto3.client(
        "kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"], region_name=os.environ.get("AWS_REGION", "us-east-1")
    )


def trim_horizon_iterators(kinesis, stream_arn):
    """Shard id -> iterator, for every shard ListShards returns (all pages)."""
    shards, token = [], None
    while True:
        page = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamARN=stream_arn)
        shards += [shard["ShardId"] for shard in page["Shards"]]
        token = page.get("NextToken")
        if not token:
            break
    return {
        shard: kinesis.get_shard_iterator(StreamARN=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for shard in shards
    }


def record_pages(kinesis, stream_arn, expected, unpack=None):
    """Yields each GetRecords answer's records, shard after shard, until `expected` records were read;
    with `unpack`, each answer's records pass through it first (KPL de-aggregation) and count after it."""
    iterators = trim_horizon_iterators(kinesis, stream_arn)
    read = 0
    while read < expected and iterators:
        for shard, iterator in list(iterators.items()):
            response = kinesis.get_records(StreamARN=stream_arn, ShardIterator=iterator, Limit=10000)
            records = unpack(response["Records"]) if unpack else response["Records"]
            read += len(records)
            yield records
            if response.get("NextShardIterator"):
                iterators[shard] = response["NextShardIterator"]
            else:
                del iterators[shard]
