"""Benchmark file formats: typed records, readers and writers of ScanRefer, Multi3DRefer, ScanQA, SQA3D,
Scan2Cap references, LLaVA-style conversations, DenseScan records, and the prediction files of each task.

Readers validate every record and raise `DataError` naming the file, the record index and the field, so
a broken file from another tool is fixed at its source instead of surfacing as a wrong metric.
"""

from core.data.errors import DataError

__all__ = ["DataError"]
