"""Replay: a captured request sent again through the proxy, as captured or edited (plan, the
target guard, sending), and bulk replay jobs."""

from .jobs import MAX_JOB_EXCHANGES, ReplayJob, ReplayJobs
from .plan import (
    NOT_CONFIGURED,
    Overrides,
    ReplayPlan,
    ReplayRoutes,
    decode_body_override,
    header_bytes,
    plan_replay,
    replay_template,
)
from .sending import ReplayClients, ReplayResult, SentReplay, dispatch_replay, send_replay, sent_url
from .targets import ApprovedTarget, TargetRefused, check_target

__all__ = [
    "MAX_JOB_EXCHANGES", "NOT_CONFIGURED", "ApprovedTarget", "Overrides", "ReplayClients", "ReplayJob",
    "ReplayJobs", "ReplayPlan", "ReplayResult", "ReplayRoutes", "SentReplay", "TargetRefused", "check_target",
    "decode_body_override", "dispatch_replay", "header_bytes", "plan_replay", "replay_template", "send_replay",
    "sent_url",
]  # fmt: skip
