"""Runs Tributary's OpenMetadata Kinesis workflow from Airflow, every five minutes.

Put this file in your DAGs folder, the workflow YAML beside it (see kinesis.yaml),
and `tributary` on the workers' PATH. The bot's JWT and AWS secrets come from the
environment (`$OM_BOT_JWT` in the YAML), not from this file. The task fails when
the run reports a failed stream (exit 1) or an invalid workflow (exit 2).
"""
from datetime import datetime, timedelta
from pathlib import Path

from airflow import DAG

try:  # Airflow 3 moved the bash operator into the standard provider.
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:
    from airflow.operators.bash import BashOperator

WORKFLOW = Path(__file__).with_name("kinesis.yaml")

default_args = {
    "owner": "data-platform",
    "retries": 3,
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(minutes=60),
}

with DAG(
    "tributary_kinesis_metadata",
    default_args=default_args,
    description="OpenMetadata's Kinesis metadata workflow, run by Tributary",
    start_date=datetime(2026, 1, 1),
    schedule="*/5 * * * *",
    catchup=False,
    is_paused_upon_creation=False,
) as dag:
    BashOperator(
        task_id="tributary_metadata_ingest",
        # A trailing space keeps Airflow from reading the command as a template file name.
        bash_command=f"tributary metadata ingest -c {WORKFLOW} ",
    )
