"""The peer of the reader benchmark: a plain boto3 GetRecords loop, as a user
would write it, over every shard of a stream from TRIM_HORIZON until it has
read the expected number of records. Prints its own CPU and wall time as JSON.

    python boto3_reader.py STREAM_ARN EXPECTED_RECORDS
"""

import json
import sys
import time

from boto3_shards import kinesis_client, trim_horizon_iterators


def main() -> None:
    stream_arn, expected = sys.argv[1], int(sys.argv[2])
    kinesis = kinesis_client()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    iterators = trim_horizon_iterators(kinesis, stream_arn)
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
