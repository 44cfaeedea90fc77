"""The lesson's claims, checked on the running kernel: claims as data, pure judges over lab
runs, and `tcpclose claims`.

    from tcpclose.claims import check_claims
    for row in check_claims():
        print(row.id, row.verdict, row.evidence)
"""

from tcpclose.claims.catalog import BY_ID, CLAIMS
from tcpclose.claims.check import check_claims, judge_claims, needed_scenarios, system_name
from tcpclose.claims.model import Claim, ClaimResult, Judgement, MissingEvidence, Verdict

__all__ = [
    "BY_ID",
    "CLAIMS",
    "Claim",
    "ClaimResult",
    "Judgement",
    "MissingEvidence",
    "Verdict",
    "check_claims",
    "judge_claims",
    "needed_scenarios",
    "system_name",
]
