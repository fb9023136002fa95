"""Waivers: accepted exceptions (rule, scope, justification, approver, expiry) that turn a
covered FAIL into WAIVED and stay visible in every report."""
