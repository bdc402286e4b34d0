"""Tributary's Kinesis metadata extraction for OpenMetadata's own ingestion workflow.

``sourcePythonClass: tributary_openmetadata.source.TributarySource`` in a Custom Messaging service.
"""

__version__ = "0.1.0"
