"""Kept for existing imports: the S3 reader lives in ``s3logs``, LookupEvents in ``lookup``."""

from .lookup import EVENT_SOURCES, RateLimiter, lookup_records  # noqa: F401
from .s3logs import TrailBucket, parse_when, split_s3_url  # noqa: F401
