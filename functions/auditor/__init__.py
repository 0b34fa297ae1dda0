"""Secrets Manager and KMS failure auditor: names the documented cause of each failed call."""

__version__ = "0.1.0"
