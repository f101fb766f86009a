"""
Fuzz sizes for the hypothesis tests of issue 8: a CI profile and the full run.

``QWEN_VOICE_FUZZ=full`` (what ``bench/fuzz_subscriptions.py`` sets) runs every fuzz test at
its full example count (>= 10,000 cases across the suite); the default CI profile runs a
tenth, so the whole suite stays fast.  Hypothesis profiles ``qwen-ci`` / ``qwen-full`` carry
the shared settings (no deadline: a loaded CI machine must not fail on timing).
"""
import os

from hypothesis import HealthCheck, settings

FULL = os.environ.get('QWEN_VOICE_FUZZ', 'ci') == 'full'
CI_FRACTION = 10

settings.register_profile('qwen-ci', deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.filter_too_much])
settings.register_profile('qwen-full', deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.filter_too_much])
PROFILE = settings.get_profile('qwen-full' if FULL else 'qwen-ci')


def fuzz_settings(full_examples: int):
    """Return hypothesis settings for a test worth ``full_examples`` cases in the full run."""
    count = full_examples if FULL else max(20, full_examples // CI_FRACTION)
    return settings(PROFILE, max_examples=count)
