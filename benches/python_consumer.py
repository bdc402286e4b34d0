"""The peer of the end-to-end benchmark: a plain Python consumer, as a user
would write it: a boto3 GetRecords loop over every shard from TRIM_HORIZON,
payloads buffered and turned into Parquet with pyarrow's JSON reader every
100,000 records. Prints its own CPU time and peak RSS as JSON.

    python python_consumer.py STREAM_ARN EXPECTED_RECORDS OUT_DIR
"""

import io
import json
import os
import resource
import sys
import time

from boto3_shards import kinesis_client, record_pages
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("user", pa.string()),
        ("event", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("amount", pa.float64()),
        ("country", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("device", pa.struct([("os", pa.string()), ("version", pa.string()), ("mobile", pa.bool_())])),
        ("referrer", pa.string()),
        ("session", pa.string()),
    ]
)
FLUSH_RECORDS = 100_000


def write(lines, out_dir, part):
    options = pj.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
    table = pj.read_json(io.BytesIO(b"\n".join(lines)), parse_options=options)
    pq.write_table(table, os.path.join(out_dir, f"part-{part:05}.parquet"), compression="zstd")
    return table.num_rows


def main() -> None:
    stream_arn, expected, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(out_dir, exist_ok=True)
    kinesis = kinesis_client()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    read = rows = parts = 0
    buffered = []
    for page in record_pages(kinesis, stream_arn, expected):
        buffered += [record["Data"] for record in page]
        read += len(page)
        if len(buffered) >= FLUSH_RECORDS:
            rows += write(buffered, out_dir, parts)
            parts, buffered = parts + 1, []
    if buffered:
        rows += write(buffered, out_dir, parts)
    print(
        json.dumps(
            {
                "records": read,
                "rows": rows,
                "cpu_seconds": time.process_time() - cpu_start,
                "wall_seconds": time.perf_counter() - wall_start,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
