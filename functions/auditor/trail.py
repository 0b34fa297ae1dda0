"""Compatibility: the CloudTrail record parser is ``auditor.records`` and the file reader is
``auditor.documents``; this module keeps the names scripts imported from here before."""

from .documents import LOG_SUFFIXES, iter_documents, iter_outcomes  # noqa: F401
from .records import *  # noqa: F401,F403
from .records import __all__ as _records_all

__all__ = [*_records_all, "LOG_SUFFIXES", "iter_documents", "iter_outcomes"]
