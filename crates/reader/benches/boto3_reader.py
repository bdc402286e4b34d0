"""The peer of the reader benchmark: a plain boto3 GetRecords loop, as a user
would write it, over every shard of a stream from TRIM_HORIZON until it has
read the expected number of records. Prints its own CPU and wall time as JSON.

    python boto3_reader.py STREAM_ARN EXPECTED_RECORDS
"""

import json
import os
import sys
import time

import boto3


def main() -> None:
    stream_arn, expected = sys.argv[1], int(sys.argv[2])
    kinesis = boto3.client(
        "kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"], region_name=os.environ.get("AWS_REGION", "us-east-1")
    )
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    shards, token = [], None
    while True:
        page = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamARN=stream_arn)
        shards += [shard["ShardId"] for shard in page["Shards"]]
        token = page.get("NextToken")
        if not token:
            break
    iterators = {
        shard: kinesis.get_shard_iterator(StreamARN=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for shard in shards
    }
    records = payload_bytes = 0
    while records < expected and iterators:
        for shard, iterator in list(iterators.items()):
            response = kinesis.get_records(StreamARN=stream_arn, ShardIterator=iterator, Limit=10000)
            for record in response["Records"]:
                records += 1
                payload_bytes += len(record["Data"])
            if response.get("NextShardIterator"):
                iterators[shard] = response["NextShardIterator"]
            else:
                del iterators[shard]
    print(
        json.dumps(
            {
                "records": records,
                "bytes": payload_bytes,
                "cpu_seconds": time.process_time() - cpu_start,
                "wall_seconds": time.perf_counter() - wall_start,
            }
        )
    )


if __name__ == "__main__":
    main()
