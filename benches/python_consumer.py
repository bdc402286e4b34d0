"""The peer of the end-to-end benchmark: a plain Python consumer, as a user
would write it: a boto3 GetRecords loop over every shard from TRIM_HORIZON,
payloads buffered and turned into Parquet with pyarrow's JSON reader every
100,000 records. Prints its own CPU time and peak RSS as JSON. With
TRIBUTARY_BENCH_AGGREGATE above 1 the stream holds KPL aggregates, which it
unpacks with AWS's own aws-kinesis-agg, as a boto3 user of such a stream would.

    python python_consumer.py STREAM_ARN EXPECTED_RECORDS OUT_DIR
"""

import base64
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


def payloads(records):
    """The user records' payloads of one GetRecords answer of KPL aggregates."""
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    # The library hands sub-records on as Lambda events do, payloads base64-encoded.
    return [base64.b64decode(record["kinesis"]["data"]) for record in iter_deaggregate_records(records, data_format="Boto3")]


def main() -> None:
    stream_arn, expected, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(out_dir, exist_ok=True)
    kinesis = kinesis_client()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    read = rows = parts = 0
    buffered = []
    aggregated = int(os.environ.get("TRIBUTARY_BENCH_AGGREGATE", "1")) > 1
    plain = lambda records: [record["Data"] for record in records]
    for page in record_pages(kinesis, stream_arn, expected, payloads if aggregated else plain):
        buffered += page
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
