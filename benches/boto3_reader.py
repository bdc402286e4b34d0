"""The peer of the reader benchmark: a plain boto3 GetRecords loop, as a user
would write it, over every shard of a stream from TRIM_HORIZON until it has
read the expected number of records. Prints its own CPU and wall time as JSON.

    python boto3_reader.py STREAM_ARN EXPECTED_RECORDS
"""

import json
import sys
import time

from boto3_shards import kinesis_client, record_pages


def main() -> None:
    stream_arn, expected = sys.argv[1], int(sys.argv[2])
    kinesis = kinesis_client()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    records = payload_bytes = 0
    for page in record_pages(kinesis, stream_arn, expected):
        records += len(page)
        payload_bytes += sum(len(record["Data"]) for record in page)
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
