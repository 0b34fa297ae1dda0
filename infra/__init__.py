"""The auditor's AWS CDK app: one construct per concern, composed by ``AuditorStack``."""
