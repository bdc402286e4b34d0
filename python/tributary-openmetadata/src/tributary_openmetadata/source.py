"""The Custom Messaging source OpenMetadata's workflow runs: Tributary's extraction, as OpenMetadata's requests.

The workflow (from OpenMetadata's UI, ``metadata ingest -c`` or Airflow) builds this source from a
``CustomMessaging`` service connection::

    serviceConnection:
      config:
        type: CustomMessaging
        sourcePythonClass: tributary_openmetadata.source.TributarySource
        connectionOptions:
          awsRegion: eu-west-1                      # required
          assumeRoleArn: arn:aws:iam::...:role/x    # optional
          endPointURL: http://localhost:4567        # optional (an emulator)
          tributaryServer: http://tributary:7878    # optional: schemas, lineage, pipeline status
          databaseService: glue_prod                # optional: your Glue connector's service
          sampleSize: "10"                          # optional
          topicFilterIncludes: "orders.*, clicks"   # optional, joining the workflow's filters
          topicFilterExcludes: '[".*_test"]'        # (comma-separated, or a JSON list)

It runs ``tributary metadata extract`` (the binary inside this wheel) and turns each entity line it
prints into the request object OpenMetadata's own sink writes, so authentication, run status and
the UI's logs are OpenMetadata's. AWS credentials come from the container's environment (its
instance role, or ``AWS_*`` variables), the Tributary token from ``TRIBUTARY_TOKEN``: never from
``connectionOptions``, which OpenMetadata stores as plain text.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import threading
from collections import deque
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Optional

from metadata.generated.schema.api.data.createContainer import CreateContainerRequest
from metadata.generated.schema.api.data.createDatabase import CreateDatabaseRequest
from metadata.generated.schema.api.data.createDatabaseSchema import CreateDatabaseSchemaRequest
from metadata.generated.schema.api.data.createPipeline import CreatePipelineRequest
from metadata.generated.schema.api.data.createTable import CreateTableRequest
from metadata.generated.schema.api.data.createTopic import CreateTopicRequest
from metadata.generated.schema.api.lineage.addLineage import AddLineageRequest
from metadata.generated.schema.api.services.createDatabaseService import CreateDatabaseServiceRequest
from metadata.generated.schema.api.services.createMessagingService import CreateMessagingServiceRequest
from metadata.generated.schema.api.services.createPipelineService import CreatePipelineServiceRequest
from metadata.generated.schema.api.services.createStorageService import CreateStorageServiceRequest
from metadata.generated.schema.entity.data.container import Container
from metadata.generated.schema.entity.data.database import Database
from metadata.generated.schema.entity.data.databaseSchema import DatabaseSchema
from metadata.generated.schema.entity.data.pipeline import Pipeline, PipelineStatus
from metadata.generated.schema.entity.data.table import Table
from metadata.generated.schema.entity.data.topic import Topic, TopicSampleData
from metadata.generated.schema.entity.services.connections.messaging.customMessagingConnection import (
    CustomMessagingConnection,
)
from metadata.generated.schema.entity.services.databaseService import DatabaseService
from metadata.generated.schema.entity.services.ingestionPipelines.status import StackTraceError
from metadata.generated.schema.entity.services.messagingService import MessagingConnection, MessagingServiceType
from metadata.generated.schema.metadataIngestion.workflow import Source as WorkflowSource
from metadata.generated.schema.type.entityLineage import ColumnLineage, EntitiesEdge, LineageDetails
from metadata.generated.schema.type.entityReference import EntityReference
from metadata.ingestion.api.models import Either
from metadata.ingestion.api.steps import InvalidSourceException, Source
from metadata.ingestion.models.barrier import Barrier
from metadata.ingestion.models.ometa_topic_data import OMetaTopicSampleData
from metadata.ingestion.models.pipeline_status import OMetaPipelineStatus
from metadata.ingestion.ometa.ometa_api import OpenMetadata

from tributary_openmetadata.binary import tributary_binary

logger = logging.getLogger("tributary_openmetadata")

# Entity lines whose request becomes one create request each.
CREATE_REQUESTS = {
    "topics": CreateTopicRequest,
    "pipelineServices": CreatePipelineServiceRequest,
    "pipelines": CreatePipelineRequest,
    "storageServices": CreateStorageServiceRequest,
    "containers": CreateContainerRequest,
}
# Entities another connector (OpenMetadata's Glue one) owns: created only when missing.
CREATE_IF_MISSING = {
    "databaseServices": (CreateDatabaseServiceRequest, DatabaseService),
    "databases": (CreateDatabaseRequest, Database),
    "databaseSchemas": (CreateDatabaseSchemaRequest, DatabaseSchema),
    "tables": (CreateTableRequest, Table),
}
# Kinds OpenMetadata's sink creates through its bulk API (services, containers and pipelines go one by one).
BULK_CREATED = {"topics", "databases", "databaseSchemas", "tables"}
ENTITY_TYPES = {"topic": Topic, "pipeline": Pipeline, "table": Table, "container": Container}


class TributaryError(Exception):
    """The binary could not run the extraction at all."""


def kinesis_workflow(config: WorkflowSource, options: Dict[str, str], host_port: str) -> Dict[str, Any]:
    """The Kinesis workflow ``tributary metadata extract`` reads, from the Custom Messaging one."""
    region = options.get("awsRegion")
    if not region:
        raise InvalidSourceException("connectionOptions.awsRegion is required (the streams' region)")
    aws_config: Dict[str, Any] = {"awsRegion": region}
    for key in ("assumeRoleArn", "assumeRoleSessionName", "endPointURL", "profileName"):
        if options.get(key):
            aws_config[key] = options[key]
    connection = config.serviceConnection.root.config
    source_config = config.sourceConfig.config
    kinesis_connection: Dict[str, Any] = {"type": "Kinesis", "awsConfig": aws_config}
    connection_filter: Dict[str, List[str]] = {}
    if connection.topicFilterPattern is not None:
        connection_filter = connection.topicFilterPattern.model_dump(exclude_none=True)
    # Filters given as connection options join the connection's own (a UI that shows only
    # `connectionOptions` can still set them).
    for key, option in (("includes", "topicFilterIncludes"), ("excludes", "topicFilterExcludes")):
        patterns = _patterns(options.get(option, ""))
        if patterns:
            connection_filter[key] = list(connection_filter.get(key) or []) + patterns
    if connection_filter:
        kinesis_connection["topicFilterPattern"] = connection_filter
    pipeline: Dict[str, Any] = {
        "type": "MessagingMetadata",
        "generateSampleData": bool(getattr(source_config, "generateSampleData", False)),
        # Stale topics are OpenMetadata's workflow's to mark, not the binary's.
        "markDeletedTopics": False,
    }
    pattern = getattr(source_config, "topicFilterPattern", None)
    if pattern is not None:
        pipeline["topicFilterPattern"] = pattern.model_dump(exclude_none=True)
    return {
        "source": {
            "type": "kinesis",
            "serviceName": config.serviceName,
            "serviceConnection": {"config": kinesis_connection},
            "sourceConfig": {"config": pipeline},
        },
        # `extract` publishes nothing: the sink and server below are never used.
        "sink": {"type": "file", "config": {"filename": os.devnull}},
        "workflowConfig": {
            "openMetadataServerConfig": {
                "hostPort": host_port,
                "authProvider": "openmetadata",
                "securityConfig": {"jwtToken": "unused-by-extract"},
            }
        },
    }


class TributarySource(Source):
    """OpenMetadata's ``sourcePythonClass`` for a Custom Messaging service of Kinesis streams."""

    def __init__(self, config: WorkflowSource, metadata: OpenMetadata):
        super().__init__()
        self.config = config
        self.metadata = metadata
        self.service_connection: CustomMessagingConnection = config.serviceConnection.root.config
        options = self.service_connection.connectionOptions
        self.options: Dict[str, str] = dict(options.root) if options is not None and options.root else {}

    @classmethod
    def create(cls, config_dict: dict, metadata: OpenMetadata, pipeline_name: Optional[str] = None) -> "TributarySource":
        config = WorkflowSource.model_validate(config_dict)
        connection = config.serviceConnection.root.config
        if not isinstance(connection, CustomMessagingConnection):
            raise InvalidSourceException(f"Expected a CustomMessagingConnection, but got {connection}")
        return cls(config, metadata)

    def prepare(self):
        # As OpenMetadata's own messaging sources do: an unreachable or refused AWS fails the run here.
        self.test_connection()

    def test_connection(self) -> None:
        """Runs each step of the Kinesis test connection; raises if one fails."""
        with self._workflow_file() as path:
            done = subprocess.run(
                [tributary_binary(self.options), "metadata", "test-connection", "-c", path],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        for line in done.stdout.splitlines():
            logger.info(line)
        if done.returncode != 0:
            raise TributaryError(f"Kinesis test connection failed: {done.stdout.strip()} {done.stderr.strip()}")

    def close(self):
        pass

    def _iter(self, *_, **__) -> Iterable[Either]:
        yield Either(right=self._service_request())
        # OpenMetadata's sink buffers creates of one kind for its bulk API: a barrier flushes them
        # before another kind comes, or anything that needs them to exist (samples, lineage, statuses).
        buffered = None
        for line in self._extract():
            kind = line.get("entity")
            if buffered is not None and kind != buffered:
                yield Either(right=Barrier(reason=f"{buffered} before {kind}"))
                buffered = None
            for request in self._requests(line):
                if request.right is not None and kind in BULK_CREATED:
                    buffered = kind
                yield request
        if buffered is not None:
            yield Either(right=Barrier(reason=f"{buffered} at the end"))

    def _service_request(self) -> CreateMessagingServiceRequest:
        """The service, its connection holding only what was configured (no defaults of newer
        connection schemas, which older servers refuse), or none when the workflow stores none."""
        connection = None
        if self.metadata.config.storeServiceConnection:
            given = self.service_connection
            fields = {"type": given.type, "sourcePythonClass": given.sourcePythonClass}
            if given.connectionOptions is not None:
                fields["connectionOptions"] = given.connectionOptions
            connection = MessagingConnection(config=CustomMessagingConnection(**fields))
        return CreateMessagingServiceRequest(
            name=self.config.serviceName, serviceType=MessagingServiceType.CustomMessaging, connection=connection
        )

    @contextmanager
    def _workflow_file(self) -> Iterator[str]:
        """A private temporary file holding the Kinesis workflow, removed when the block ends."""
        workflow = kinesis_workflow(self.config, self.options, self.metadata.config.hostPort)
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="tributary-workflow-") as handle:
            json.dump(workflow, handle)
            handle.flush()
            yield handle.name

    def _extract(self) -> Iterable[dict]:
        """The entity lines of ``tributary metadata extract``, as they come."""
        with self._workflow_file() as path:
            command = [tributary_binary(self.options), "metadata", "extract", "-c", path]
            if self.options.get("tributaryServer"):
                command += ["--tributary-server", self.options["tributaryServer"]]
            if self.options.get("databaseService"):
                command += ["--database-service", self.options["databaseService"]]
            if self.options.get("sampleSize"):
                command += ["--sample-size", str(int(self.options["sampleSize"]))]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            errors: deque = deque(maxlen=5)  # the last lines, for the error a failed run raises
            drain = threading.Thread(target=_log_lines, args=(process.stderr, errors), daemon=True)
            drain.start()
            assert process.stdout is not None
            try:
                for text in process.stdout:
                    text = text.strip()
                    if text:
                        yield json.loads(text)
                code = process.wait()
            finally:
                # The workflow stopped reading (an error, or an interrupt): the extraction stops too.
                if process.poll() is None:
                    process.kill()
                    process.wait()
                drain.join()
        # 1: some streams failed (each came as a `failure` line); anything else: nothing could run.
        if code not in (0, 1):
            raise TributaryError(f"tributary metadata extract exited with {code}: {' '.join(errors)}")

    def _requests(self, line: dict) -> Iterable[Either]:
        kind = line.get("entity")
        if kind in CREATE_REQUESTS:
            yield Either(right=CREATE_REQUESTS[kind].model_validate(line["request"]))
        elif kind in CREATE_IF_MISSING:
            request_class, entity_class = CREATE_IF_MISSING[kind]
            if self.metadata.get_by_name(entity=entity_class, fqn=line["fqn"]) is None:
                yield Either(right=request_class.model_validate(line["request"]))
        elif kind == "topicSampleData":
            topic = self.metadata.get_by_name(entity=Topic, fqn=line["topic"])
            if topic is None:
                yield _failure(line["topic"], "the topic was not created, so its sample data cannot be added")
            else:
                sample = TopicSampleData(messages=line.get("messages") or [])
                yield Either(right=OMetaTopicSampleData(topic=topic, sample_data=sample))
        elif kind == "lineage":
            yield self._lineage(line["edge"])
        elif kind == "pipelineStatus":
            status = PipelineStatus.model_validate(line["status"])
            yield Either(right=OMetaPipelineStatus(pipeline_fqn=line["pipeline"], pipeline_status=status))
        elif kind == "failure":
            yield _failure(line.get("name", "?"), line.get("error", ""))
        elif kind == "warning":
            logger.warning(line.get("message", ""))
        elif kind == "summary":
            logger.info("tributary: %s", line.get("line", ""))
        # `messagingServices`: the service is this workflow's (Custom Messaging), yielded first.

    def _reference(self, end: dict) -> Optional[EntityReference]:
        entity_class = ENTITY_TYPES.get(end.get("type", ""))
        entity = self.metadata.get_by_name(entity=entity_class, fqn=end.get("fqn", "")) if entity_class else None
        return EntityReference(id=entity.id, type=end["type"]) if entity is not None else None

    def _lineage(self, edge: dict) -> Either:
        source, target = self._reference(edge["fromEntity"]), self._reference(edge["toEntity"])
        if source is None or target is None:
            return _failure(edge["toEntity"].get("fqn", "?"), f"lineage: an end is missing in OpenMetadata: {edge}")
        details = edge.get("lineageDetails") or {}
        pipeline = self._reference(details["pipeline"]) if details.get("pipeline") else None
        columns = [ColumnLineage.model_validate(column) for column in details.get("columnsLineage") or []]
        return Either(
            right=AddLineageRequest(
                edge=EntitiesEdge(
                    fromEntity=source,
                    toEntity=target,
                    lineageDetails=LineageDetails(pipeline=pipeline, columnsLineage=columns),
                )
            )
        )


def _patterns(option: str) -> List[str]:
    """A filter option's regexes: a JSON list (``["a,b", "c"]``), or comma-separated ones."""
    option = option.strip()
    if option.startswith("["):
        try:
            patterns = json.loads(option)
        except ValueError as error:
            raise InvalidSourceException(f"a topic filter option is not a JSON list: {error}") from error
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise InvalidSourceException("a topic filter option's JSON list must hold strings")
        return patterns
    return [pattern.strip() for pattern in option.split(",") if pattern.strip()]


def _failure(name: str, error: str) -> Either:
    return Either(left=StackTraceError(name=name, error=error))


def _log_lines(stream, keep: deque) -> None:
    for text in stream:
        text = text.rstrip()
        if text:
            keep.append(text)
            logger.debug("tributary: %s", text)
